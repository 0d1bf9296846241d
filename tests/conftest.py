"""Shared fixtures: real PostgreSQL and Redis servers for the integration tests.

The servers come from ``tests/support/services.py``, which has two providers:

1. Docker through testcontainers (the images docker-compose.yml names) when the
   ``testcontainers`` package is installed and a Docker engine answers;
2. otherwise the local server binaries (Debian's ``postgresql`` and ``redis-server``), started
   on free 127.0.0.1 ports in temporary directories (as root, PostgreSQL runs as the
   ``postgres`` user).

Each server is started once per test session and removed at its end. When neither provider
works, the tests that need the server are skipped, except with ``CI=true``: in CI no
integration test may skip, so they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.logs import LogLines
from tests.support.otlp_sink import OtlpSink
from tests.support.services import (
    PostgresServer,
    RedisServer,
    ServiceUnavailable,
    provide_postgres,
    provide_redis,
)

_S = TypeVar("_S", PostgresServer, RedisServer)


def _start(provide: Callable[[Path], _S], workdir: Path) -> _S:
    try:
        return provide(workdir)
    except ServiceUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so this may not skip: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, with database and user ``app``."""
    server = _start(provide_postgres, tmp_path_factory.mktemp("postgres"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server for the whole session."""
    server = _start(provide_redis, tmp_path_factory.mktemp("redis"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_dsn(postgres: PostgresServer) -> str:
    """SQLAlchemy URL of the session's PostgreSQL: ``postgresql+psycopg://app:...@127.0.0.1:PORT/app``."""
    return postgres.dsn


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis: ``redis://127.0.0.1:PORT/0``."""
    return redis_server.url


@pytest.fixture
def log_lines(capfd: pytest.CaptureFixture[str]) -> LogLines:
    """Records this process writes to stdout during the test, parsed (every line must be JSON)."""
    capfd.readouterr()
    return LogLines(capfd)


@pytest.fixture(scope="session")
def otlp_sink() -> Iterator[OtlpSink]:
    """An OTLP/HTTP receiver that collects every span sent to it."""
    sink = OtlpSink()
    yield sink
    sink.close()


@pytest.fixture(scope="session")
def tracer_provider(otlp_sink: OtlpSink) -> Any:
    """The test process's one tracer provider (a process can have only one): spans go to memory,
    for unit tests, and synchronously to the OTLP sink, where worker processes send theirs too."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from observability.config import ObservabilityConfig
    from observability.tracing import ProcessTracerProvider

    # The provider production builds, at 100 %: its sampler keeps the probes out of traces.
    provider = ProcessTracerProvider(ObservabilityConfig(traces_sampler="parentbased_always_on"),
                                     Resource.create({"service.name": "episodes-api"}))
    provider.in_memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(provider.in_memory))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_sink.url}/v1/traces")))
    trace.set_tracer_provider(provider)
    return provider


@pytest.fixture(scope="session")
def span_exporter(tracer_provider: Any) -> Any:
    return tracer_provider.in_memory
