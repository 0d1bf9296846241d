"""Alert delivery: one notification per error fingerprint and channel, sent by Celery tasks through
the transports of `observability.alert_transports` (a Slack-compatible webhook, e-mail over SMTP).

An error storm sends one notification per fingerprint per channel per window: the web process
claims the fingerprint for each channel in Redis (`SET NX EX`) before queueing that channel's task,
and the task marks its delivery of this very alert, so a redelivered task does not send twice
(webhooks have no idempotency key; e-mails carry a deterministic Message-ID for receivers that
deduplicate). Claims are per channel: one channel's permanent failure frees only its own claim.

The request hands its alert to a small outbox in its process (one entry per fingerprint, bounded);
a background thread claims and queues it, at once, or when Redis or the broker is down, every few
seconds until both answer again: the claims then decide which process's copy goes out, so each
channel still sends it once. No request waits on Redis or the broker for an alert.

Transient failures (`observability.alert_transports`) are retried with exponential backoff and
jitter, honouring `Retry-After`; anything else fails at once and frees that channel's claim so a
later occurrence can try again. An attempt that runs past its time limit (a receiver that trickles
its answer, which no socket timeout ends) is cut off, logged with where it hung, and retried; one
that ignores even that loses its worker process, and the broker hands the task out again.
The outbox is `observability.alert_outbox`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from observability import context
from observability.alert_outbox import AlertOutbox, AlertSpool
from observability.alert_transports import (
    EMAIL,
    WEBHOOK,
    Alert,
    PermanentNotificationError,
    TransientNotificationError,
    new_alert_id,
    post_webhook,
    send_email,
)
from observability.config import ObservabilityConfig
from observability.degraded import GuardedRedis, ThrottledWarning
from observability.metrics import ALERT_NOTIFICATIONS

_logger = logging.getLogger("observability.notifications")
_BACKOFF_BASE_SECONDS = 2.0
# An attempt's time limit, in NOTIFY_TIMEOUT_SECONDS: a webhook connects and reads, SMTP talks a
# few rounds, each within the timeout; the hard limit (the process is killed) comes a little later.
_ATTEMPT_LIMIT_IN_TIMEOUTS = 3
_HARD_LIMIT_GRACE_SECONDS = 5.0
# A delivery mark outlives the broker's visibility timeout (1 h), after which Redis hands an
# unacknowledged task out again: that late copy must still find the mark.
_DELIVERED_MARK_SECONDS = 2 * 3600
# Deletes a claim only while it is still this alert's: an expired claim may belong to a newer one.
_RELEASE_OWN_CLAIM = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def backoff_seconds(retries: int, cap: float, retry_after: float | None = None) -> float:
    """Jitter over the upper half of an exponential ceiling; never shorter than the server's `Retry-After`.

    Not full jitter (0 to the ceiling): its waits can all come out near zero, so the retries could
    be spent within seconds and an outage of a minute lose the notification. The upper half keeps
    the retries spread out (ceilings 2, 4, 8, ... s) and guarantees a least total retry time.
    """
    ceiling = min(cap, _BACKOFF_BASE_SECONDS * 2**retries)
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


def alert_key_prefix(namespace: str) -> str:
    """Where the alert claims and delivery marks live in Redis: under the service namespace, which
    web and worker share (the worker releases the claims the web process takes)."""
    return f"{namespace}:alert"


def claim_key(prefix: str, fingerprint: str, channel: str) -> str:
    return f"{prefix}:{fingerprint}:{channel}"


def delivered_key(prefix: str, alert: Alert, channel: str) -> str:
    return f"{prefix}:sent:{alert.fingerprint}:{alert.alert_id}:{channel}"


class Notifier:
    """Queues notifications from any process; the tasks run in the Celery worker.

    The request that raised an error only hands its alert to the outbox: claiming in Redis and
    publishing to the broker happen on the outbox's thread, so no request waits for either (a host
    that drops packets instead of refusing them costs each call its whole connect timeout).
    """

    def __init__(self, config: ObservabilityConfig, redis: GuardedRedis, warnings: ThrottledWarning,
                 celery_app: Celery | None) -> None:
        self._config = config
        self._redis = redis
        self._warnings = warnings
        self._prefix = alert_key_prefix(config.service_namespace)
        self.tasks = register_tasks(celery_app, config, redis, self._prefix) if celery_app is not None else {}
        self.channels = tuple(channel for channel, enabled in (
            (WEBHOOK, bool(config.alert_webhook_url)), (EMAIL, bool(config.alert_email_to))) if enabled)
        spool = AlertSpool(config.alert_spool_dir) if config.alert_spool_dir else None
        self.outbox = AlertOutbox(self._send, spool=spool)
        self._waiting: set[str] = set()  # alerts counted as held back (once each)

    def recover(self) -> int:
        """Takes up the alerts an earlier process of the service spooled and did not hand over."""
        if not self.channels or not self.tasks:
            return 0
        return self.outbox.recover(self.channels)

    def notify(self, fingerprint: str, severity: str, title: str, message: str,
               details: dict[str, str]) -> str:
        """Hands one notification per channel to the outbox, unless this fingerprint is on its way.

        Returns what happened: pending (the outbox claims and queues it: once per fingerprint and
        channel per window), deduplicated, dropped (the outbox was full) or disabled.
        """
        if not self.channels or not self.tasks:
            return "disabled"
        if self.outbox.holds(fingerprint):
            ALERT_NOTIFICATIONS.labels("all", "deduplicated").inc()
            return "deduplicated"
        alert = Alert(fingerprint, new_alert_id(), severity, title, message,
                      self._config.service_name, self._config.environment, details)
        if self.outbox.hold(alert, self.channels):
            return "pending"
        for channel in self.channels:
            ALERT_NOTIFICATIONS.labels(channel, "dropped").inc()
        self._warnings.warn("alert outbox", f"alert outbox full ({self.outbox.capacity}): notification dropped",
                            OverflowError(alert.fingerprint))
        return "dropped"

    def _send(self, alert: Alert, channels: tuple[str, ...]) -> tuple[str, ...]:
        """The outbox's attempt: claims and queues each channel under the alert's request id (the
        task's records carry it); returns the channels to try again."""
        token = context.activate(context.RequestContext(alert.details.get("request_id") or alert.alert_id))
        try:
            left = self._dispatch(alert, channels)
        finally:
            context.deactivate(token)
        if not left:
            self._waiting.discard(alert.alert_id)
        elif alert.alert_id not in self._waiting:
            self._waiting.add(alert.alert_id)
            for channel in left:
                ALERT_NOTIFICATIONS.labels(channel, "held").inc()
        return left

    def _dispatch(self, alert: Alert, channels: tuple[str, ...]) -> tuple[str, ...]:
        """Claims and queues each channel; returns the channels that must be tried again later."""
        left: list[str] = []
        deduplicated: list[str] = []
        for channel in channels:
            key = claim_key(self._prefix, alert.fingerprint, channel)
            # bool(): redis-py's SET NX answers None, not False, when the key exists.
            claimed = self._redis.run("alert dedupe", lambda r, k=key: bool(r.set(
                k, alert.alert_id, nx=True, ex=self._config.alert_dedupe_seconds)))
            if claimed is None:  # Redis unavailable
                left.append(channel)
            elif not claimed:
                deduplicated.append(channel)
            elif not self._queue(channel, alert):
                release_claim(self._redis, key, alert.alert_id)
                left.append(channel)
        if deduplicated:
            label = "all" if len(deduplicated) == len(self.channels) else deduplicated[0]
            ALERT_NOTIFICATIONS.labels(label, "deduplicated").inc()
        return tuple(left)

    def _queue(self, channel: str, alert: Alert) -> bool:
        """Publishes one channel's task on its own, so one failed publish cannot cost the others."""
        try:
            # The app's publish retry policy (one quick retry after a reconnect) applies.
            self.tasks[channel].apply_async(kwargs={"alert": asdict(alert)}, retry=True)
        except Exception as error:
            self._warnings.warn("broker", f"{channel} alert notification could not be queued", error)
            return False
        ALERT_NOTIFICATIONS.labels(channel, "queued").inc()
        return True


def release_claim(redis: GuardedRedis, key: str, alert_id: str) -> None:
    """Frees a channel's claim if it is still this alert's, so a later occurrence may notify."""
    redis.run("alert dedupe release", lambda r: r.eval(_RELEASE_OWN_CLAIM, 1, key, alert_id))


def register_tasks(celery_app: Celery, config: ObservabilityConfig, redis: GuardedRedis,
                   prefix: str) -> dict[str, Task]:
    senders: dict[str, Callable[[Alert], None]] = {
        WEBHOOK: lambda alert: post_webhook(config.alert_webhook_url, alert, config.notify_timeout_seconds),
        EMAIL: lambda alert: send_email(config, alert),
    }
    return {channel: _register(celery_app, config, redis, prefix, channel=channel, send=send)
            for channel, send in senders.items()}


def attempt_time_limit(config: ObservabilityConfig) -> float:
    """Seconds one delivery attempt may take before it is cut off and retried."""
    return _ATTEMPT_LIMIT_IN_TIMEOUTS * config.notify_timeout_seconds


def _register(celery_app: Celery, config: ObservabilityConfig, redis: GuardedRedis, prefix: str, *,
              channel: str, send: Callable[[Alert], None]) -> Task:
    limit = attempt_time_limit(config)

    @celery_app.task(name=f"observability.notify_{channel}", bind=True, acks_late=True, shared=False,
                     reject_on_worker_lost=True, max_retries=config.notify_max_retries, soft_time_limit=limit,
                     time_limit=limit + _HARD_LIMIT_GRACE_SECONDS)
    def deliver(self: Task, alert: dict[str, Any]) -> str:
        notice = Alert.from_task(alert)
        delivered = delivered_key(prefix, notice, channel)
        if redis.run("alert delivery check", lambda r: r.exists(delivered)):
            return "already-sent"
        try:
            _attempt(send, notice, channel, limit)
        except TransientNotificationError as error:
            if self.request.retries >= self.max_retries:
                _give_up(redis, prefix, channel, notice, error)
            ALERT_NOTIFICATIONS.labels(channel, "retried").inc()
            countdown = backoff_seconds(self.request.retries, config.notify_backoff_max_seconds, error.retry_after)
            _logger.warning("notification retry scheduled", extra={
                "event": "notification_retry", "channel": channel, "fingerprint": notice.fingerprint,
                "reason": str(error), "countdown_s": round(countdown, 3), "attempt": self.request.retries + 1,
            })
            raise self.retry(exc=error, countdown=countdown) from error
        except Exception as error:  # permanent, or a bug: no retry would help
            _give_up(redis, prefix, channel, notice, error)
        mark_seconds = max(config.alert_dedupe_seconds, _DELIVERED_MARK_SECONDS)
        redis.run("alert delivery mark", lambda r: r.set(delivered, "sent", ex=mark_seconds))
        ALERT_NOTIFICATIONS.labels(channel, "sent").inc()
        return "sent"

    return deliver


def _attempt(send: Callable[[Alert], None], alert: Alert, channel: str, limit: float) -> None:
    """One `send`; an attempt cut off by the task's soft time limit becomes a transient failure,
    logged with the stack it hung in."""
    try:
        send(alert)
    except SoftTimeLimitExceeded:
        _logger.warning("notification attempt cut off at its time limit", exc_info=True, extra={
            "event": "notification_hung", "channel": channel, "fingerprint": alert.fingerprint, "limit_s": limit,
        })
        raise TransientNotificationError(f"no answer within {limit:g}s") from None


def _give_up(redis: GuardedRedis, prefix: str, channel: str, alert: Alert, error: Exception) -> None:
    ALERT_NOTIFICATIONS.labels(channel, "failed").inc()
    # Only this channel's claim: the other channel may have delivered, and must not send again.
    release_claim(redis, claim_key(prefix, alert.fingerprint, channel), alert.alert_id)
    # Only the project's own errors are quoted: another library's text may hold the webhook URL.
    reason = str(error) if isinstance(error, TransientNotificationError | PermanentNotificationError) else (
        type(error).__name__)
    raise PermanentNotificationError(f"{channel} notification failed: {reason}") from None
