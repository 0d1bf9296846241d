"""The sandbox's own Redis stopped gracefully and started again on its directory: the alert claims
taken before (as the Notifier takes them: SET NX EX under `alert_key_prefix`) and the notification
tasks queued on the broker (db 1) must still be there, so the same error is not notified twice and
no queued notification is lost."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from observability.notifications import alert_key_prefix
from sandbox.common import tail, wait_ready
from sandbox.components import Component, native, redis_url
from sandbox.env import Settings, load_settings
from sandbox.net import free_port

pytestmark = pytest.mark.integration

NAMESPACE = "episodes"
FINGERPRINT = "restart-f00d"
CHANNELS = ("webhook", "email")
DEDUPE_SECONDS = 600  # ALERT_DEDUPE_SECONDS's default
CELERY_QUEUE = "celery"  # kombu's Redis transport keeps the default queue as a list of this name


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(environ={"SANDBOX_ENV_FILE": str(tmp_path / ".env"), "SANDBOX_DIR": str(tmp_path / "state"),
                                  "REDIS_PORT": str(free_port()), "REDIS_PASSWORD": secrets.token_urlsafe(16)})


@pytest.fixture
def sandbox_redis(settings: Settings) -> Iterator[Component]:
    (component,) = [c for c in native() if c.name == "redis"]
    _start(component, settings)
    try:
        yield component
    finally:
        assert component.runner is not None
        component.runner.stop(component.name, settings)


def _start(component: Component, s: Settings) -> None:
    assert component.runner is not None and component.health is not None
    health = component.health
    started = component.runner.start(component.name, s)
    wait_ready(lambda: health(s), "the sandbox's Redis", lambda: tail(s.log(component.name)), exited=started.exited)


def _claim(store: redis.Redis, channel: str) -> bool:
    """One channel's claim of the alert, as a web process's Notifier takes it; False: already claimed."""
    key = f"{alert_key_prefix(NAMESPACE)}:{FINGERPRINT}:{channel}"
    return bool(store.set(key, "alert-1", nx=True, ex=DEDUPE_SECONDS))


def _queue_notifications(s: Settings) -> None:
    """One notification task per channel on the broker, as the Notifier publishes them (no worker runs)."""
    app = Celery("redis-restart", broker=redis_url(s, 1))
    try:
        for channel in CHANNELS:
            app.send_task(f"observability.notify_{channel}", kwargs={"alert": {"fingerprint": FINGERPRINT}})
    finally:
        app.close()


def test_claims_and_queued_notifications_survive_a_restart(settings: Settings, sandbox_redis: Component) -> None:
    with redis.Redis.from_url(redis_url(settings, 0)) as store, redis.Redis.from_url(redis_url(settings, 1)) as broker:
        assert [_claim(store, channel) for channel in CHANNELS] == [True, True]
        _queue_notifications(settings)
        assert broker.llen(CELERY_QUEUE) == len(CHANNELS)

    assert sandbox_redis.runner is not None
    assert sandbox_redis.runner.stop(sandbox_redis.name, settings) == "SIGTERM"  # a graceful shutdown
    _start(sandbox_redis, settings)

    with redis.Redis.from_url(redis_url(settings, 0)) as store, redis.Redis.from_url(redis_url(settings, 1)) as broker:
        claimed_again = [_claim(store, channel) for channel in CHANNELS]
        assert claimed_again == [False, False], "the claims did not survive the restart: the error is notified twice"
        assert broker.llen(CELERY_QUEUE) == len(CHANNELS), "the queued notifications did not survive the restart"
