"""Real PostgreSQL and Redis servers for integration tests.

Two providers, tried in this order:

1. Docker through testcontainers, on the images docker-compose.yml names
   (``postgres:<POSTGRES_VERSION>-alpine``, ``redis:<REDIS_VERSION>-alpine``, from .env.example), used
   when the ``testcontainers`` package is importable and a Docker engine answers. If starting a
   container fails anyway (say the image is not on this machine and no registry answers: ``make
   images`` builds it), the local provider is tried next, with a warning; in CI (``CI=true``) that is
   a failure instead. Ports are published on 127.0.0.1 only. Two settings suit machines without a
   registry or inside a container, unless already set: Ryuk (the reaper of left containers) is
   disabled when its image is not on this machine (every handle removes its own container in
   ``close()``), and on a host that is itself a container (``/.dockerenv``) the containers are
   reached at the engine's host, not the bridge gateway.
2. Local server binaries (Debian's ``postgresql`` and ``redis-server`` packages), started on free
   ports bound to 127.0.0.1 only, in temporary directories: the throwaway servers of
   ``sandbox.engines.postgres`` and ``sandbox.engines.redis_server``, so ``make up``, the benchmarks
   and these tests start PostgreSQL and Redis the same way. PostgreSQL refuses to run as root, so
   as root its tools run as the ``postgres`` system user through ``runuser``.

``provide_postgres``/``provide_redis`` raise ``ServiceUnavailable`` only when neither provider can
be used at all. A provider that is there but fails to start its server raises ``RuntimeError``
with the tail of the server log: that is a failure to look at, not a reason to skip.

Every handle has ``stop()`` (the server goes away, its data directory stays), ``start()`` (the
same server back on the same port, waited on until it answers) and ``close()`` (stop and delete
everything; safe to call twice). For Docker, stop/start stop and restart the same container,
whose host port is bound to a fixed number so that it survives the restart.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import secrets
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sandbox import docker_engine
from sandbox.common import LOG_TAIL_LINES, MissingToolError, wait_ready
from sandbox.engines import postgres as pg
from sandbox.engines import redis_server
from sandbox.env import ROOT, parse_env
from sandbox.net import LOOPBACK, free_port

READY_TIMEOUT = 30.0  # seconds a server gets to answer after being started
_PINS = parse_env((ROOT / ".env.example").read_text())
POSTGRES_IMAGE = f"postgres:{_PINS['POSTGRES_VERSION']}-alpine"
REDIS_IMAGE = f"redis:{_PINS['REDIS_VERSION']}-alpine"

_T = TypeVar("_T")


class ServiceUnavailable(Exception):  # noqa: N818 - the name is the agreed interface
    """No provider can run the service on this machine; the message says why."""


class _Backend(Protocol):
    def stop(self) -> None: ...
    def start(self) -> None: ...
    def close(self) -> None: ...


class _Handle:
    """stop/start/close of a handle, passed on to the provider that runs the server."""

    _backend: _Backend

    def stop(self) -> None:
        """Stop the server (PostgreSQL: fast shutdown). Its data directory is kept."""
        self._backend.stop()

    def start(self) -> None:
        """Start the stopped server again on the same port and wait until it answers."""
        self._backend.start()

    def close(self) -> None:
        """Stop the server and delete its files or container. Safe to call twice."""
        self._backend.close()


@dataclass
class PostgresServer(_Handle):
    """A running PostgreSQL with a database ``app`` owned by the (super)user ``app``.

    ``dsn`` has SQLAlchemy's form: ``postgresql+psycopg://app:PASSWORD@HOST:PORT/app``.
    Data written before ``stop()`` is there again after ``start()``.
    """

    dsn: str
    host: str
    port: int
    _backend: _Backend = field(repr=False, compare=False)


@dataclass
class RedisServer(_Handle):
    """A running Redis at ``url`` (``redis://HOST:PORT/0``).

    It has no persistence (no RDB, no AOF): after ``stop()``/``start()`` it is empty.
    """

    url: str
    host: str
    port: int
    _backend: _Backend = field(repr=False, compare=False)


def provide_postgres(workdir: Path) -> PostgresServer:
    """Start a PostgreSQL for tests; see the module docstring for the providers.

    The local provider keeps its files in a new directory under ``workdir``, except as root:
    then ``workdir`` (pytest's are private to root) is out of reach of the ``postgres`` user and
    a new directory in the system temp dir is used instead. ``close()`` deletes either.
    """
    return _provide("PostgreSQL", _docker_postgres, lambda: _local_postgres(workdir))


def provide_redis(workdir: Path) -> RedisServer:
    """Start a Redis for tests; the local provider keeps its files in a new directory under ``workdir``."""
    return _provide("Redis", _docker_redis, lambda: _local_redis(workdir))


def _provide(what: str, docker: Callable[[], _T], local: Callable[[], _T]) -> _T:
    reasons = []
    docker_problem = _docker_problem()
    if docker_problem is None:
        try:
            return docker()
        except Exception as exc:  # e.g. the image cannot be pulled: local binaries may still work
            if os.environ.get("CI") == "true":  # where CI has an engine, testcontainers must work
                raise RuntimeError(f"CI=true: {what} in Docker (testcontainers) failed") from exc
            warnings.warn(f"{what} in Docker failed, trying local binaries: {exc!r}", stacklevel=3)
            reasons.append(f"docker: {exc!r}")
    else:
        reasons.append(f"docker: {docker_problem}")
    try:
        return local()
    except ServiceUnavailable as exc:
        reasons.append(f"local: {exc}")
    raise ServiceUnavailable(f"no {what} for integration tests ({'; '.join(reasons)})")


# --- provider 1: Docker through testcontainers --------------------------------------------------


@functools.cache
def _docker_problem() -> str | None:
    """Why testcontainers cannot be used here, or None when it can. Checked once per process."""
    if importlib.util.find_spec("testcontainers") is None:
        return "the testcontainers package is not installed"
    if shutil.which("docker"):
        if not docker_engine.docker_reachable():
            return "no Docker engine answers `docker version`"
    else:  # no CLI: ask the engine at DOCKER_HOST (or the default socket) through docker-py
        try:
            client = importlib.import_module("docker").from_env(timeout=5)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            return f"no Docker engine answers: {exc!r}"
    _configure_testcontainers()
    return None


def _configure_testcontainers() -> None:
    """Settings testcontainers reads from the environment (module doc); the connection mode on its
    first import, so that comes first, Ryuk's switch when a container starts."""
    if Path("/.dockerenv").exists():
        os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
        ryuk_image = importlib.import_module("testcontainers.core.config").testcontainers_config.ryuk_image
        client = importlib.import_module("docker").from_env(timeout=5)
        try:
            present = bool(client.images.list(name=ryuk_image))
        finally:
            client.close()
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "false" if present else "true"


def _testcontainers_class(module: str, name: str) -> Any:
    # testcontainers 4.15 moved the modules to testcontainers.community (the old path warns).
    for path in (f"testcontainers.community.{module}", f"testcontainers.{module}"):
        with contextlib.suppress(ImportError):
            return getattr(importlib.import_module(path), name)
    raise ImportError(f"testcontainers has no {name}")


class _DockerService:
    """A started testcontainers container.

    stop()/start() stop and restart the same container, which keeps its data and its fixed host
    port; close() removes the container and its volumes.
    """

    def __init__(self, container: Any, probe: Callable[[], object], what: str) -> None:
        self._container = container
        self._probe = probe
        self._what = what
        self._closed = False

    def stop(self) -> None:
        self._container.get_wrapped_container().stop(timeout=10)

    def start(self) -> None:
        self._container.get_wrapped_container().start()
        wait_ready(self._probe, self._what, self._log_tail, timeout=READY_TIMEOUT)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.stop()

    def _log_tail(self) -> str:
        logs = self._container.get_wrapped_container().logs(tail=LOG_TAIL_LINES)
        return logs.decode(errors="replace")


def _run_container(container: Any, internal_port: int) -> tuple[str, int]:
    """Start the container; return the host and port to reach ``internal_port`` at."""
    # A fixed host port, unlike the default random one, survives a container stop/start. On loopback
    # only: with_bind_ports takes no address, but the mapping goes to docker-py's `ports`, which takes
    # (address, port).
    container.with_bind_ports(internal_port, free_port())
    container.ports[str(internal_port)] = (LOOPBACK, container.ports[str(internal_port)])
    try:
        container.start()
        return container.get_container_host_ip(), int(container.get_exposed_port(internal_port))
    except BaseException:
        with contextlib.suppress(Exception):
            container.stop()
        raise


def _docker_postgres() -> PostgresServer:
    password = secrets.token_hex(16)
    container = _testcontainers_class("postgres", "PostgresContainer")(
        POSTGRES_IMAGE, username=pg.USER, password=password, dbname=pg.DATABASE, driver="psycopg"
    )
    tuning = [arg for key, value in pg.THROWAWAY_TUNING.items() for arg in ("-c", f"{key}={value}")]
    container.with_command(["postgres", *tuning])
    host, port = _run_container(container, 5432)
    service = _DockerService(container, pg.probe(host, port, password), "PostgreSQL container")
    return PostgresServer(pg.dsn(password, port, host), host, port, service)


def _docker_redis() -> RedisServer:
    container = _testcontainers_class("redis", "RedisContainer")(REDIS_IMAGE)
    container.with_command(["redis-server", *redis_server.NO_PERSISTENCE])
    host, port = _run_container(container, 6379)
    service = _DockerService(container, redis_server.probe(host, port), "Redis container")
    return RedisServer(f"redis://{host}:{port}/0", host, port, service)


# --- provider 2: local binaries (sandbox.engines) ------------------------------------------------


def _local_postgres(workdir: Path) -> PostgresServer:
    try:
        cluster = pg.throwaway_cluster(workdir, timeout=READY_TIMEOUT)
    except MissingToolError as exc:
        raise ServiceUnavailable(str(exc)) from None
    return PostgresServer(cluster.dsn, LOOPBACK, cluster.port, _LocalPostgres(cluster))


class _LocalPostgres:
    """The handle's backend: a throwaway cluster, deleted on close()."""

    def __init__(self, cluster: pg.PostgresCluster) -> None:
        self._cluster = cluster
        self._closed = False

    def start(self) -> None:
        self._cluster.start()

    def stop(self) -> None:
        self._cluster.stop("fast")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cluster.destroy()


def _local_redis(workdir: Path) -> RedisServer:
    try:
        server = redis_server.LocalRedis.start_new(workdir, timeout=READY_TIMEOUT)
    except MissingToolError as exc:
        raise ServiceUnavailable(str(exc)) from None
    return RedisServer(server.url, LOOPBACK, server.port, server)
