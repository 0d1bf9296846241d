"""Real PostgreSQL and Redis servers for integration tests.

Two providers, tried in this order:

1. Docker through testcontainers (``postgres:17-alpine``, ``redis:8-alpine``), used when the
   ``testcontainers`` package is importable and a Docker engine answers. If starting a container
   fails anyway (say the image pull is refused), the local provider is tried next, with a warning.
2. Local server binaries (Debian's ``postgresql`` and ``redis-server`` packages), started on free
   ports bound to 127.0.0.1 only, in temporary directories. PostgreSQL refuses to run as root, so
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
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo
from redis.backoff import NoBackoff
from redis.retry import Retry

READY_TIMEOUT = 30.0  # seconds a server gets to answer after being started
_LOG_TAIL_LINES = 40
_LOOPBACK = "127.0.0.1"
_PG_IMAGE = "postgres:17-alpine"
_REDIS_IMAGE = "redis:8-alpine"
_PG_USER = "app"
_PG_DB = "app"
# Durability is worthless for throwaway test data and costs seconds per run.
_PG_TUNING = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
# No RDB snapshots, no AOF: tests start from an empty Redis and a restart empties it again.
_REDIS_NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]

_T = TypeVar("_T")


class ServiceUnavailable(Exception):  # noqa: N818 - the name is the agreed interface
    """No provider can run the service on this machine; the message says why."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return sock.getsockname()[1]


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
            warnings.warn(f"{what} in Docker failed, trying local binaries: {exc!r}", stacklevel=3)
            reasons.append(f"docker: {exc!r}")
    else:
        reasons.append(f"docker: {docker_problem}")
    try:
        return local()
    except ServiceUnavailable as exc:
        reasons.append(f"local: {exc}")
    raise ServiceUnavailable(f"no {what} for integration tests ({'; '.join(reasons)})")


# --- readiness ------------------------------------------------------------------------------


def _wait_ready(
    probe: Callable[[], object],
    what: str,
    log_tail: Callable[[], str],
    exited: Callable[[], bool] = lambda: False,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Call ``probe`` until it succeeds; on timeout or early exit fail with the server log tail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return
        except Exception as exc:  # refused or reset connections are normal while a server boots
            last_error = exc
        if exited():
            problem = "exited while starting"
        elif time.monotonic() > deadline:
            problem = f"did not answer within {timeout:.0f}s"
        else:
            time.sleep(0.1)
            continue
        raise RuntimeError(f"{what} {problem} (last error: {last_error!r})\n--- server log tail ---\n{log_tail()}")


def _pg_probe(host: str, port: int, password: str, dbname: str) -> Callable[[], object]:
    conninfo = make_conninfo(host=host, port=port, user=_PG_USER, password=password, dbname=dbname, connect_timeout=2)

    def probe() -> None:
        with psycopg.connect(conninfo) as conn:
            conn.execute("select 1")

    return probe


def _redis_probe(host: str, port: int) -> Callable[[], object]:
    def probe() -> None:
        # No retries: the wait loop retries, and redis-py's default backoff would slow it down.
        with redis.Redis(
            host=host, port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        ) as client:
            client.ping()

    return probe


def _pg_dsn(password: str, host: str, port: int) -> str:
    return f"postgresql+psycopg://{_PG_USER}:{password}@{host}:{port}/{_PG_DB}"


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


# --- provider 1: Docker through testcontainers --------------------------------------------------


@functools.cache
def _docker_problem() -> str | None:
    """Why testcontainers cannot be used here, or None when it can. Checked once per process."""
    if importlib.util.find_spec("testcontainers") is None:
        return "the testcontainers package is not installed"
    if shutil.which("docker"):
        try:
            info = subprocess.run(
                ["docker", "info"], capture_output=True, stdin=subprocess.DEVNULL, timeout=5, check=False
            )
        except subprocess.TimeoutExpired:
            return "`docker info` did not answer within 5s"
        return None if info.returncode == 0 else "`docker info` failed: no Docker engine is reachable"
    try:  # no CLI: ask the engine at DOCKER_HOST (or the default socket) through docker-py
        client = importlib.import_module("docker").from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"no Docker engine answers: {exc!r}"
    return None


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
        _wait_ready(self._probe, self._what, self._log_tail)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.stop()

    def _log_tail(self) -> str:
        logs = self._container.get_wrapped_container().logs(tail=_LOG_TAIL_LINES)
        return logs.decode(errors="replace")


def _run_container(container: Any, internal_port: int) -> tuple[str, int]:
    """Start the container; return the host and port to reach ``internal_port`` at."""
    # A fixed host port, unlike the default random one, survives a container stop/start.
    container.with_bind_ports(internal_port, free_port())
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
        _PG_IMAGE, username=_PG_USER, password=password, dbname=_PG_DB, driver="psycopg"
    )
    tuning = [arg for key, value in _PG_TUNING.items() for arg in ("-c", f"{key}={value}")]
    container.with_command(["postgres", *tuning])
    host, port = _run_container(container, 5432)
    service = _DockerService(container, _pg_probe(host, port, password, _PG_DB), "PostgreSQL container")
    return PostgresServer(_pg_dsn(password, host, port), host, port, service)


def _docker_redis() -> RedisServer:
    container = _testcontainers_class("redis", "RedisContainer")(_REDIS_IMAGE)
    container.with_command(["redis-server", *_REDIS_NO_PERSISTENCE])
    host, port = _run_container(container, 6379)
    service = _DockerService(container, _redis_probe(host, port), "Redis container")
    return RedisServer(f"redis://{host}:{port}/0", host, port, service)


# --- provider 2: local PostgreSQL binaries ------------------------------------------------------


def _pg_bindir() -> Path:
    """The directory with initdb, pg_ctl and postgres: from PATH, else the newest Debian install."""
    candidates = []
    if on_path := shutil.which("pg_ctl"):
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major_version, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise ServiceUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; install the package `postgresql`"
    )


def _major_version(bindir: Path) -> int:
    name = bindir.parent.name
    return int(name) if name.isdigit() else 0


def _pg_system_user() -> pwd.struct_passwd:
    """The user to run PostgreSQL as when we are root: PostgreSQL refuses to run as root."""
    if shutil.which("runuser") is None:
        raise ServiceUnavailable("running as root, and `runuser` is missing to start PostgreSQL as postgres")
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable("running as root, and there is no `postgres` user to run it as") from None


def _pg_home(workdir: Path, owner: pwd.struct_passwd | None) -> Path:
    if owner is None:
        return Path(tempfile.mkdtemp(prefix="postgres-", dir=workdir))
    # pytest's temp dirs are private to root (mode 0700): the postgres user could not reach a
    # directory inside them, so take one in the world-traversable system temp dir instead.
    home = Path(tempfile.mkdtemp(prefix="pg-test-"))
    os.chown(home, owner.pw_uid, owner.pw_gid)
    return home


def _local_postgres(workdir: Path) -> PostgresServer:
    bindir = _pg_bindir()
    owner = _pg_system_user() if os.geteuid() == 0 else None
    server = _LocalPostgres(bindir, _pg_home(workdir, owner), free_port(), secrets.token_hex(16), owner)
    try:
        server.create()
    except BaseException:
        server.close()
        raise
    return PostgresServer(server.dsn, _LOOPBACK, server.port, server)


class _LocalPostgres:
    """A PostgreSQL cluster in ``home`` (data dir, log, socket), driven with pg_ctl."""

    def __init__(self, bindir: Path, home: Path, port: int, password: str, owner: pwd.struct_passwd | None) -> None:
        self.port = port
        self.dsn = _pg_dsn(password, _LOOPBACK, port)
        self._bindir = bindir
        self._home = home
        self._password = password
        self._data = home / "data"
        self._log = home / "postgres.log"
        self._as_owner = ["runuser", "-u", owner.pw_name, "--"] if owner else []
        self._closed = False

    def create(self) -> None:
        """initdb, tune, start, and create the ``app`` database."""
        self._initdb()
        self._configure()
        self.start()
        self._create_database()

    def start(self) -> None:
        if not self._running():
            self._pg_ctl("start", "--log", str(self._log), "--wait", "--timeout", str(int(READY_TIMEOUT)))
        # Probe the `postgres` database: `app` does not exist yet during create().
        probe = _pg_probe(_LOOPBACK, self.port, self._password, "postgres")
        _wait_ready(probe, "PostgreSQL", lambda: _tail(self._log))

    def stop(self) -> None:
        if self._running():
            self._pg_ctl("stop", "--mode", "fast", "--wait")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._data.is_dir() and self._running():
                # Everything is deleted next, so no shutdown checkpoint is needed.
                self._pg_ctl("stop", "--mode", "immediate", "--wait")
        finally:
            shutil.rmtree(self._home, ignore_errors=True)

    def _initdb(self) -> None:
        pwfile = self._home / "pwfile"
        pwfile.write_text(self._password + "\n")  # home is private (0700) to us or to postgres
        try:
            self._run(
                "initdb",
                f"--pgdata={self._data}",
                f"--username={_PG_USER}",
                f"--pwfile={pwfile}",
                # Password auth over TCP; trust on the socket, which lives in the private home dir.
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        finally:
            pwfile.unlink()

    def _configure(self) -> None:
        settings = {
            "listen_addresses": f"'{_LOOPBACK}'",
            "port": str(self.port),
            # Our own socket dir: /var/run/postgresql may be missing or used by a system cluster.
            "unix_socket_directories": f"'{self._home}'",
            **_PG_TUNING,
        }
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.write("\n# integration tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _create_database(self) -> None:
        conninfo = make_conninfo(
            host=_LOOPBACK, port=self.port, user=_PG_USER, password=self._password, dbname="postgres"
        )
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_PG_DB)))

    def _running(self) -> bool:
        status = self._command("pg_ctl", "status", "--pgdata", str(self._data))
        return status.returncode == 0  # 3: not running (also after a crash), 4: no data dir

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "--pgdata", str(self._data), *args)

    def _run(self, tool: str, *args: str) -> None:
        done = self._command(tool, *args)
        if done.returncode != 0:
            raise RuntimeError(
                f"`{shlex.join(done.args)}` failed with exit code {done.returncode}:\n"
                f"{done.stdout}{done.stderr}\n--- server log tail ---\n{_tail(self._log)}"
            )

    def _command(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_owner, str(self._bindir / tool), *args],
            # As the postgres user, the caller's cwd (e.g. /root) may be unreadable.
            cwd=self._home,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=READY_TIMEOUT * 3,
            check=False,
        )


# --- provider 2: local Redis binary --------------------------------------------------------------


def _local_redis(workdir: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("redis-server not found; install the package `redis-server`")
    server = _LocalRedis(binary, Path(tempfile.mkdtemp(prefix="redis-", dir=workdir)), free_port())
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return RedisServer(f"redis://{_LOOPBACK}:{server.port}/0", _LOOPBACK, server.port, server)


class _LocalRedis:
    """redis-server as a child process; its port and directory stay the same across stop()/start()."""

    def __init__(self, binary: str, home: Path, port: int) -> None:
        self.port = port
        self._binary = binary
        self._home = home
        self._log = home / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    def start(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            with self._log.open("ab") as log:  # the child keeps its own copy of the descriptor
                self._proc = subprocess.Popen(
                    self._argv(),
                    cwd=self._home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        proc = self._proc
        _wait_ready(
            _redis_probe(_LOOPBACK, self.port),
            "Redis",
            lambda: _tail(self._log),
            exited=lambda: proc.poll() is not None,
        )

    def _argv(self) -> list[str]:
        listen = ["--port", str(self.port), "--bind", _LOOPBACK]
        return [self._binary, *listen, *_REDIS_NO_PERSISTENCE, "--dir", str(self._home)]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()  # SIGTERM: a clean shutdown, with nothing to save
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            shutil.rmtree(self._home, ignore_errors=True)
