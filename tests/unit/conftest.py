"""Unit-test fixtures: no external service. Redis URLs point at a closed loopback port, so the
instrumentation's degraded paths run for real; the database is SQLite."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from observability import Observability, ObservabilityConfig
from tests.support.demo_app import build_demo_app


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dead_redis_url() -> str:
    return f"redis://127.0.0.1:{closed_port()}/0"


@pytest.fixture
def make_config(dead_redis_url: str) -> Callable[..., ObservabilityConfig]:
    def make(**overrides: Any) -> ObservabilityConfig:
        values: dict[str, Any] = {"tracing_enabled": False, "redis_url": dead_redis_url,
                                  "degraded_warning_interval_seconds": 60.0}
        values.update(overrides)
        return ObservabilityConfig(**values)

    return make


@pytest.fixture
def demo(make_config: Callable[..., ObservabilityConfig]) -> tuple[Flask, Observability]:
    return build_demo_app(make_config())


class LogLines:
    """The JSON lines the process wrote to stdout (file descriptor 1) since the last read."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self._capfd = capfd

    def read(self) -> list[dict[str, Any]]:
        out = self._capfd.readouterr().out
        lines = [line for line in out.split("\n") if line]
        return [json.loads(line) for line in lines]  # fails the test on any non-JSON line

    def events(self, event: str) -> list[dict[str, Any]]:
        return [record for record in self.read() if record.get("event") == event]


@pytest.fixture
def log_lines(capfd: pytest.CaptureFixture[str]) -> LogLines:
    capfd.readouterr()
    return LogLines(capfd)


@pytest.fixture(scope="session")
def span_exporter():
    """The process's one tracer provider, exporting to memory (set before any app starts one)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def spans(span_exporter):
    span_exporter.clear()
    return span_exporter
