"""Delivery: the notifier's claims and outbox against an in-memory Redis stand-in, the retry
backoff, and the worker's tasks against a real webhook sink."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import pytest
from celery import Celery

from observability import ObservabilityConfig
from observability.alert_transports import EMAIL, WEBHOOK, PermanentNotificationError
from observability.degraded import ThrottledWarning
from observability.notifications import (
    Notifier,
    backoff_seconds,
    claim_key,
    register_tasks,
    release_claim,
)
from tests.support.alerts import ALERT


def test_backoff_is_bounded_jittered_and_honours_retry_after() -> None:
    delays = [backoff_seconds(retries, cap=300) for retries in range(12) for _ in range(50)]
    assert all(0 <= d <= 300 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100  # jitter spreads the retries
    assert all(1.0 <= backoff_seconds(0, cap=300) <= 2.0 for _ in range(50))
    assert backoff_seconds(0, cap=300, retry_after=30) >= 30
    assert backoff_seconds(0, cap=60, retry_after=600) == 60


def test_the_retries_of_a_sandbox_default_outlast_a_one_minute_outage() -> None:
    # Six retries (NOTIFY_MAX_RETRIES): even the shortest draws wait 1+2+4+8+16+32 = 63 s in all.
    shortest = [min(backoff_seconds(retries, cap=300) for _ in range(200)) for retries in range(6)]
    assert sum(shortest) >= 63
    assert all(low >= 2 ** retries for retries, low in enumerate(shortest))


# --- claims and the outbox, against an in-memory stand-in for Redis and the broker ----------------


class MemoryStore:
    """The few Redis commands the notifier uses, in memory (expiry ignored: tests are short)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def set(self, key: str, value: str, nx: bool = False, ex: int | None = None) -> bool | None:
        if nx and key in self.data:
            return None  # as redis-py answers a SET NX that did nothing
        self.data[key] = value
        return True

    def exists(self, key: str) -> int:
        return int(key in self.data)

    def eval(self, _script: str, _numkeys: int, key: str, value: str) -> int:  # compare-and-delete only
        if self.data.get(key) == value:
            del self.data[key]
            return 1
        return 0


class MemoryRedis:
    """`GuardedRedis.run` over a `MemoryStore`: None while `down`, as when Redis fails."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()
        self.down = False

    def run(self, _purpose: str, call: Any) -> Any:
        return None if self.down else call(self.store)


class Broker:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.down = False


class FakeTask:
    def __init__(self, channel: str, broker: Broker) -> None:
        self.channel = channel
        self.broker = broker

    def apply_async(self, kwargs: dict[str, Any], retry: bool) -> None:
        if self.broker.down:
            raise ConnectionError("broker down")
        self.broker.published.append((self.channel, kwargs["alert"]))


def _notifier(redis: MemoryRedis, broker: Broker, **overrides: Any) -> Notifier:
    config = ObservabilityConfig(alert_webhook_url="http://127.0.0.1:9/hook", alert_email_to=("ops@example.test",),
                                 **overrides)
    warnings = ThrottledWarning(logging.getLogger("test.notifications"), 60.0)
    notifier = Notifier(config, redis, warnings, Celery("unit-notifications"))  # type: ignore[arg-type]
    notifier.tasks = {channel: FakeTask(channel, broker) for channel in notifier.channels}  # type: ignore[misc]
    notifier.outbox.background = False  # the test flushes, instead of the outbox's thread
    return notifier


def _error(notifier: Notifier, fingerprint: str = "f00dfeed") -> str:
    return notifier.notify(fingerprint, "critical", "[CRITICAL] KeyError in api", "KeyError: <?>", {})


def _channels(broker: Broker) -> list[str]:
    return sorted(channel for channel, _ in broker.published)


def test_a_storm_queues_one_notification_per_channel_and_no_request_waits_for_it() -> None:
    redis, broker = MemoryRedis(), Broker()
    notifier = _notifier(redis, broker)
    redis.down = True  # were a request to call Redis or the broker, it would be seen below
    assert [_error(notifier) for _ in range(5)] == ["pending"] + ["deduplicated"] * 4
    assert broker.published == []  # the requests only handed the alert over
    redis.down = False
    assert notifier.outbox.flush() == 0
    assert _error(notifier) == "pending"  # the same error after the first was queued ...
    assert notifier.outbox.flush() == 0
    assert _channels(broker) == ["email", "webhook"]  # ... is deduplicated by the claims


def test_alerts_raised_while_redis_is_down_wait_in_the_outbox_and_go_out_once() -> None:
    store, broker = MemoryStore(), Broker()
    web_workers = [MemoryRedis(store), MemoryRedis(store)]  # two processes, one Redis
    notifiers = [_notifier(redis, broker) for redis in web_workers]
    for redis in web_workers:
        redis.down = True
    for notifier in notifiers:
        assert [_error(notifier) for _ in range(3)] == ["pending", "deduplicated", "deduplicated"]
        assert notifier.outbox.flush() == 1  # held: Redis does not answer
    assert broker.published == []

    for redis in web_workers:
        redis.down = False
    assert [notifier.outbox.flush() for notifier in notifiers] == [0, 0]
    assert _channels(broker) == ["email", "webhook"]  # the claims let one process's copy through


def test_an_alert_the_broker_refused_frees_its_claims_and_waits() -> None:
    redis, broker = MemoryRedis(), Broker()
    notifier = _notifier(redis, broker)
    broker.down = True
    assert _error(notifier) == "pending"
    assert notifier.outbox.flush() == 1
    assert redis.store.data == {}  # claims released: nothing was queued
    assert _error(notifier, "0ther") == "pending"
    broker.down = False
    assert notifier.outbox.flush() == 0
    assert _channels(broker) == ["email", "email", "webhook", "webhook"]


def test_a_full_outbox_drops_new_alerts_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    redis, broker = MemoryRedis(), Broker()
    notifier = _notifier(redis, broker)
    notifier.outbox.capacity = 2
    redis.down = True
    outcomes = [_error(notifier, f"fp{i}") for i in range(5)]
    assert outcomes == ["pending", "pending", "dropped", "dropped", "dropped"]
    warnings = [r for r in caplog.records if getattr(r, "dependency", None) == "alert outbox"]
    assert len(warnings) == 1 and warnings[0].getMessage() == "alert outbox full (2): notification dropped"


def test_claims_are_per_channel_and_a_release_frees_only_its_own() -> None:
    redis, broker = MemoryRedis(), Broker()
    notifier = _notifier(redis, broker)
    assert _error(notifier) == "pending"
    notifier.outbox.flush()
    (_, first), _ = broker.published
    # The e-mail failed for good: its task releases the e-mail claim only.
    release_claim(redis, claim_key("episodes:alert", "f00dfeed", EMAIL), first["alert_id"])  # type: ignore[arg-type]
    assert _error(notifier) == "pending"
    notifier.outbox.flush()
    assert _channels(broker) == ["email", "email", "webhook"]  # the webhook was not sent twice


def test_a_release_leaves_a_newer_alerts_claim_alone() -> None:
    redis = MemoryRedis()
    key = claim_key("svc:alert", "f00dfeed", WEBHOOK)
    redis.store.set(key, "newer-alert")
    release_claim(redis, key, "older-alert")  # type: ignore[arg-type]
    assert redis.store.data == {key: "newer-alert"}


def test_a_redelivered_task_does_not_send_twice_and_a_new_alert_does(sink) -> None:
    redis = MemoryRedis()
    config = ObservabilityConfig(alert_webhook_url=f"{sink.url}/hook", notify_timeout_seconds=5)
    tasks = register_tasks(Celery("unit-delivery"), config, redis, "svc:alert")  # type: ignore[arg-type]
    payload = asdict(ALERT)
    assert tasks[WEBHOOK].apply(kwargs={"alert": payload}).get() == "sent"
    assert tasks[WEBHOOK].apply(kwargs={"alert": payload}).get() == "already-sent"  # the same alert again
    later = {**payload, "alert_id": "1700000900-ffff0000"}  # the next window's claim: a new alert
    assert tasks[WEBHOOK].apply(kwargs={"alert": later}).get() == "sent"
    assert len(sink.state.messages) == 2


def test_a_permanent_failure_releases_only_that_channels_claim() -> None:
    redis = MemoryRedis()
    prefix = "svc:alert"
    for channel in (WEBHOOK, EMAIL):
        redis.store.set(claim_key(prefix, ALERT.fingerprint, channel), ALERT.alert_id)
    from sandbox.net import free_port

    config = ObservabilityConfig(smtp_port=free_port(), alert_email_to=("ops@example.test",), notify_max_retries=0)
    tasks = register_tasks(Celery("unit-delivery"), config, redis, prefix)  # type: ignore[arg-type]
    result = tasks[EMAIL].apply(kwargs={"alert": asdict(ALERT)})  # SMTP down, no retry left: gives up
    assert isinstance(result.result, PermanentNotificationError)
    assert set(redis.store.data) == {claim_key(prefix, ALERT.fingerprint, WEBHOOK)}


def test_every_channels_attempt_has_a_time_limit_and_survives_a_lost_worker() -> None:
    config = ObservabilityConfig(notify_timeout_seconds=4)
    tasks = register_tasks(Celery("unit-limits"), config, MemoryRedis(), "svc:alert")  # type: ignore[arg-type]
    for task in tasks.values():
        # Soft: cut off and retried (the integration test with a trickling receiver); hard: the process
        # is killed, and the task, acknowledged late, goes back to the broker.
        assert (task.soft_time_limit, task.time_limit) == (12, 17)
        assert task.acks_late and task.reject_on_worker_lost
