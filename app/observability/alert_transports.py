"""How an alert leaves: a Slack-compatible webhook or an e-mail over SMTP, and which failures are
worth a retry.

Transient failures (timeouts, connection errors, HTTP 408/429/5xx, SMTP 4xx) raise
`TransientNotificationError`, carrying the server's `Retry-After` where it sent one; anything else
raises `PermanentNotificationError`. Neither quotes the webhook URL, which is a credential.
"""

from __future__ import annotations

import email.utils
import re
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import requests

from observability.config import ObservabilityConfig

WEBHOOK = "webhook"
EMAIL = "email"
# smtplib otherwise asks the resolver for this host's full name (socket.getfqdn), outside its timeout.
_SMTP_LOCAL_HOSTNAME = "localhost"


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    alert_id: str  # one per claim: the e-mail's Message-ID and the key of the delivery marks
    severity: str
    title: str
    message: str
    service: str
    environment: str
    details: dict[str, str]

    @classmethod
    def from_task(cls, payload: dict[str, Any]) -> Alert:
        """The alert of a task's arguments (`dataclasses.asdict` of it when queued)."""
        return cls(**payload)


def new_alert_id() -> str:
    return f"{int(time.time())}-{secrets.token_hex(4)}"


_DELAY_SECONDS = re.compile(r"[0-9]{1,9}")  # Retry-After's delay-seconds; str.isdigit() also takes "²"


class TransientNotificationError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentNotificationError(Exception):
    """A permanent failure: retrying would not help."""


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if _DELAY_SECONDS.fullmatch(value.strip()):
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
    except requests.RequestException as error:  # a malformed URL (MissingSchema, InvalidURL...): no retry helps
        raise PermanentNotificationError(f"webhook {type(error).__name__}") from None
    status = response.status_code
    if status in (408, 429) or status >= 500:
        raise TransientNotificationError(f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After")))
    if status >= 400:
        raise PermanentNotificationError(f"webhook answered HTTP {status}")


def email_message(alert: Alert, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = f"<{alert.fingerprint}.{alert.alert_id}@{alert.service}.alerts>"
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
