"""Notification delivery against real local servers: an HTTP webhook sink and an SMTP server."""

from __future__ import annotations

import pytest
import requests

from observability import ObservabilityConfig
from observability.notifications import (
    Alert,
    PermanentNotificationError,
    TransientNotificationError,
    backoff_seconds,
    email_message,
    post_webhook,
    send_email,
    slack_payload,
)
from sandbox.webhook_sink import WebhookSink
from tests.support.smtp_sink import SmtpSink

ALERT = Alert(fingerprint="f00dfeed", window=42, severity="critical", title="[CRITICAL] KeyError in api",
              message="KeyError: <?>", service="episodes-api", environment="test",
              details={"request_id": "req-123456", "trace_id": "ab" * 16})


@pytest.fixture
def sink():
    server = WebhookSink().start_background()
    yield server
    server.shutdown()
    server.server_close()


def _script(sink: WebhookSink, *answers: dict) -> None:
    requests.post(f"{sink.url}/_script", json=list(answers), timeout=5).raise_for_status()


def test_webhook_delivers_a_slack_compatible_payload(sink) -> None:
    post_webhook(f"{sink.url}/hook", ALERT, timeout=5)
    (message,) = sink.state.messages
    assert message["body"] == slack_payload(ALERT)
    assert message["body"]["text"] == ALERT.title
    fields = {f["title"]: f["value"] for f in message["body"]["attachments"][0]["fields"]}
    assert fields["request_id"] == "req-123456"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_webhook_retryable_statuses_are_transient(sink, status: int) -> None:
    _script(sink, {"status": status})
    with pytest.raises(TransientNotificationError):
        post_webhook(f"{sink.url}/hook", ALERT, timeout=5)


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_webhook_client_errors_are_permanent(sink, status: int) -> None:
    _script(sink, {"status": status})
    with pytest.raises(PermanentNotificationError):
        post_webhook(f"{sink.url}/hook", ALERT, timeout=5)


def test_webhook_retry_after_is_read(sink) -> None:
    _script(sink, {"status": 429, "retry_after": 7})
    with pytest.raises(TransientNotificationError) as raised:
        post_webhook(f"{sink.url}/hook", ALERT, timeout=5)
    assert raised.value.retry_after == 7


def test_webhook_connection_refused_is_transient() -> None:
    from tests.support.services import free_port

    with pytest.raises(TransientNotificationError):
        post_webhook(f"http://127.0.0.1:{free_port()}/hook", ALERT, timeout=1)


def test_backoff_is_bounded_jittered_and_honours_retry_after() -> None:
    delays = [backoff_seconds(retries, cap=300) for retries in range(12) for _ in range(50)]
    assert all(0 <= d <= 300 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100  # jitter spreads the retries
    assert max(backoff_seconds(0, cap=300) for _ in range(50)) <= 2.0
    assert backoff_seconds(0, cap=300, retry_after=30) >= 30
    assert backoff_seconds(0, cap=60, retry_after=600) == 60


def test_email_has_a_deterministic_message_id() -> None:
    first = email_message(ALERT, "alerts@example.test", ("ops@example.test",))
    again = email_message(ALERT, "alerts@example.test", ("ops@example.test",))
    assert first["Message-ID"] == again["Message-ID"] == "<f00dfeed.42@episodes-api.alerts>"


def _smtp_config(port: int) -> ObservabilityConfig:
    return ObservabilityConfig(smtp_host="127.0.0.1", smtp_port=port, alert_email_to=("ops@example.test",),
                               notify_timeout_seconds=5)


def test_email_is_delivered() -> None:
    with SmtpSink() as smtp:
        send_email(_smtp_config(smtp.port), ALERT)
        (message,) = smtp.messages
    assert message["Subject"] == ALERT.title
    assert "req-123456" in message.get_payload()


def test_smtp_4xx_is_transient_and_5xx_permanent() -> None:
    with SmtpSink() as smtp:
        smtp.recorder.reject_with = "451 4.3.0 try again later"
        with pytest.raises(TransientNotificationError):
            send_email(_smtp_config(smtp.port), ALERT)
        smtp.recorder.reject_with = "554 5.7.1 rejected"
        with pytest.raises(PermanentNotificationError):
            send_email(_smtp_config(smtp.port), ALERT)


def test_smtp_down_is_transient() -> None:
    from tests.support.services import free_port

    with pytest.raises(TransientNotificationError):
        send_email(_smtp_config(free_port()), ALERT)


def test_smtp_greets_with_a_fixed_name_instead_of_a_dns_lookup() -> None:
    # smtplib's default (socket.getfqdn) asks the resolver, outside the connection's timeout.
    with SmtpSink() as smtp:
        send_email(_smtp_config(smtp.port), ALERT)
        assert smtp.recorder.greetings == ["localhost"]


def test_a_failed_webhook_post_does_not_carry_its_url() -> None:
    import traceback

    from tests.support.services import free_port

    secret_url = f"http://127.0.0.1:{free_port()}/services/T000/B000/s3cr3t-webhook-token"
    with pytest.raises(TransientNotificationError) as raised:
        post_webhook(secret_url, ALERT, timeout=1)
    assert "s3cr3t-webhook-token" not in "".join(traceback.format_exception(raised.value))
