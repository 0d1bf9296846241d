"""Fixtures of the notification tests: a real local webhook sink."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.webhook_sink import WebhookSink


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink().start_background()
    yield server
    server.shutdown()
    server.server_close()
