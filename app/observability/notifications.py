"""Alert notifications sent by Celery tasks: a Slack-compatible webhook and e-mail over SMTP.

An error storm sends one notification per fingerprint per window: the web process claims the
fingerprint in Redis (`SET NX EX`) before queueing, and each channel's task marks its delivery so a
redelivered task does not send twice (webhooks have no idempotency key; e-mails carry a
deterministic Message-ID for receivers that deduplicate). Transient failures (timeouts, connection
errors, HTTP 408/429/5xx, SMTP 4xx) are retried with exponential backoff and full jitter, honouring
`Retry-After`; anything else fails at once and frees the claim so a later occurrence can try again.
"""

from __future__ import annotations

import email.utils
import logging
import random
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any

import requests
from celery import Celery, Task

from observability.config import ObservabilityConfig
from observability.degraded import GuardedRedis, ThrottledWarning
from observability.metrics import ALERT_NOTIFICATIONS

_logger = logging.getLogger("observability.notifications")
WEBHOOK = "webhook"
EMAIL = "email"
_BACKOFF_BASE_SECONDS = 2.0
_BROKER_DOWN_CLAIM_SECONDS = 30
# smtplib otherwise asks the resolver for this host's full name (socket.getfqdn), outside its timeout.
_SMTP_LOCAL_HOSTNAME = "localhost"


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    window: int  # which dedupe window this alert belongs to
    severity: str
    title: str
    message: str
    service: str
    environment: str
    details: dict[str, str]


class TransientNotificationError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentNotificationError(Exception):
    """A permanent failure: retrying would not help."""


def backoff_seconds(retries: int, cap: float, retry_after: float | None = None) -> float:
    """Full jitter over an exponential ceiling; never shorter than the server's `Retry-After`."""
    delay = random.uniform(0.0, min(cap, _BACKOFF_BASE_SECONDS * 2**retries))  # noqa: S311 - jitter, not crypto
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def slack_payload(alert: Alert) -> dict[str, Any]:
    return {
        "text": alert.title,
        "attachments": [{
            "color": "danger" if alert.severity == "critical" else "warning",
            "title": alert.title,
            "text": alert.message,
            "fields": [{"title": name, "value": value, "short": True} for name, value in alert.details.items()],
            "footer": f"{alert.service} · {alert.environment} · fingerprint {alert.fingerprint}",
        }],
    }


def post_webhook(url: str, alert: Alert, timeout: float) -> None:
    try:
        response = requests.post(url, json=slack_payload(alert), timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as error:
        # from None: the error's text holds the webhook URL, which is a secret (Slack's is).
        raise TransientNotificationError(type(error).__name__) from None
    status = response.status_code
    if status in (408, 429) or status >= 500:
        raise TransientNotificationError(f"HTTP {status}", _parse_retry_after(response.headers.get("Retry-After")))
    if status >= 400:
        raise PermanentNotificationError(f"webhook answered HTTP {status}")


def email_message(alert: Alert, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = f"<{alert.fingerprint}.{alert.window}@{alert.service}.alerts>"
    lines = [alert.message, ""] + [f"{name}: {value}" for name, value in alert.details.items()]
    message.set_content("\n".join(lines))
    return message


def send_email(config: ObservabilityConfig, alert: Alert) -> None:
    message = email_message(alert, config.alert_email_from, config.alert_email_to)
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port, local_hostname=_SMTP_LOCAL_HOSTNAME,
                          timeout=config.notify_timeout_seconds) as smtp:
            if config.smtp_starttls:
                smtp.starttls()
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise TransientNotificationError(f"SMTP recipients deferred {codes}") from error
        raise PermanentNotificationError(f"SMTP recipients refused {codes}") from error
    except smtplib.SMTPResponseException as error:
        if 400 <= error.smtp_code < 500:
            raise TransientNotificationError(f"SMTP {error.smtp_code}") from error
        raise PermanentNotificationError(f"SMTP {error.smtp_code}") from error
    except (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError) as error:
        # OSError subclasses, but no retry will make the server support STARTTLS or trust the cert.
        raise PermanentNotificationError(f"SMTP {type(error).__name__}") from None
    except OSError as error:  # refused, reset, timed out, disconnected
        raise TransientNotificationError(type(error).__name__) from None


class Notifier:
    """Queues notifications from any process; the tasks run in the Celery worker."""

    def __init__(self, config: ObservabilityConfig, redis: GuardedRedis, warnings: ThrottledWarning,
                 celery_app: Celery | None) -> None:
        self._config = config
        self._redis = redis
        self._warnings = warnings
        self._prefix = f"{config.service_name}:alert"
        self.tasks = register_tasks(celery_app, config, redis, self._prefix) if celery_app is not None else {}
        self.channels = [channel for channel, enabled in (
            (WEBHOOK, bool(config.alert_webhook_url)), (EMAIL, bool(config.alert_email_to))) if enabled]

    def notify(self, fingerprint: str, severity: str, title: str, message: str,
               details: dict[str, str]) -> str:
        """Queues one notification per channel unless this fingerprint was notified in the window."""
        if not self.channels or not self.tasks:
            return "disabled"
        window_seconds = self._config.alert_dedupe_seconds
        claim = f"{self._prefix}:{fingerprint}"
        claimed = self._redis.run("alert dedupe", lambda r: bool(r.set(claim, "queued", nx=True, ex=window_seconds)))
        if claimed is None:
            return "unavailable"
        if not claimed:
            ALERT_NOTIFICATIONS.labels("all", "deduplicated").inc()
            return "deduplicated"
        alert = Alert(fingerprint, int(time.time() // window_seconds), severity, title, message,
                      self._config.service_name, self._config.environment, details)
        queued = [channel for channel in self.channels if self._queue(channel, alert)]
        if queued:
            return "queued"
        # Nothing reached the broker: keep the claim briefly, so that an error storm during a broker
        # outage does not pay a connection timeout per request, then let a later occurrence retry.
        self._redis.run("alert dedupe backoff", lambda r: r.set(claim, "broker-down", ex=_BROKER_DOWN_CLAIM_SECONDS))
        return "unavailable"

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


def register_tasks(celery_app: Celery, config: ObservabilityConfig, redis: GuardedRedis,
                   prefix: str) -> dict[str, Task]:
    senders: dict[str, Callable[[Alert], None]] = {
        WEBHOOK: lambda alert: post_webhook(config.alert_webhook_url, alert, config.notify_timeout_seconds),
        EMAIL: lambda alert: send_email(config, alert),
    }
    return {channel: _register(celery_app, config, redis, prefix, channel=channel, send=send)
            for channel, send in senders.items()}


def _register(celery_app: Celery, config: ObservabilityConfig, redis: GuardedRedis, prefix: str, *,
              channel: str, send: Callable[[Alert], None]) -> Task:
    @celery_app.task(name=f"observability.notify_{channel}", bind=True, acks_late=True, shared=False,
                     max_retries=config.notify_max_retries)
    def deliver(self: Task, alert: dict[str, Any]) -> str:
        notice = Alert(**alert)
        delivered = f"{prefix}:{notice.fingerprint}:{notice.window}:{channel}"
        if redis.run("alert delivery check", lambda r: r.exists(delivered)):
            return "already-sent"
        try:
            send(notice)
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
        except PermanentNotificationError as error:
            _give_up(redis, prefix, channel, notice, error)
        except Exception as error:
            _give_up(redis, prefix, channel, notice, error)
        redis.run("alert delivery mark", lambda r: r.set(delivered, "sent", ex=config.alert_dedupe_seconds))
        ALERT_NOTIFICATIONS.labels(channel, "sent").inc()
        return "sent"

    return deliver


def _give_up(redis: GuardedRedis, prefix: str, channel: str, alert: Alert, error: Exception) -> None:
    ALERT_NOTIFICATIONS.labels(channel, "failed").inc()
    # Free the claim so the next occurrence of this error may notify again.
    redis.run("alert dedupe release", lambda r: r.delete(f"{prefix}:{alert.fingerprint}"))
    raise PermanentNotificationError(f"{channel} notification failed: {error}") from error
