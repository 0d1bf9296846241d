"""Unit-test fixtures: no external service. Redis URLs point at a closed loopback port, so the
instrumentation's degraded paths run for real; the database is SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from observability import Observability, ObservabilityConfig
from sandbox.net import free_port
from tests.support.demo_app import build_demo_app


@pytest.fixture
def dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # free: nothing listens there


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


@pytest.fixture
def spans(span_exporter):
    span_exporter.clear()
    return span_exporter
