"""Fixtures of the observability unit tests: a real local webhook sink, and room for a provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from sandbox.webhook_sink import WebhookSink


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink().start_background()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def installed_providers(monkeypatch: pytest.MonkeyPatch) -> list[TracerProvider]:
    """`tracing.start_provider` keeps a provider already installed: this pretends none is, and
    collects the ones it installs instead of making them global."""
    from observability import tracing

    installed: list[TracerProvider] = []
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", trace.NoOpTracerProvider)
    monkeypatch.setattr(tracing.trace, "set_tracer_provider", installed.append)
    return installed
