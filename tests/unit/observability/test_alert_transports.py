"""The transports against real local servers: an HTTP webhook sink and an SMTP server."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import requests

from observability import ObservabilityConfig
from observability.alert_transports import (
    Alert,
    PermanentNotificationError,
    TransientNotificationError,
    email_message,
    post_webhook,
    send_email,
    slack_payload,
)
from sandbox.webhook_sink import WebhookSink
from tests.support.alerts import ALERT
from tests.support.smtp_sink import SmtpSink


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


def test_a_retry_after_of_other_digits_than_ascii_is_ignored_not_fatal(sink) -> None:
    _script(sink, {"status": 429, "retry_after": "\u00b2"})  # "²": str.isdigit() says yes, float() says no
    with pytest.raises(TransientNotificationError) as raised:
        post_webhook(f"{sink.url}/hook", ALERT, timeout=5)
    assert raised.value.retry_after is None


@pytest.mark.parametrize("url", ["hooks.invalid/services/T000/B000/secret-path-123",
                                 "http://[::1/services/secret-path-123", "gopher://h/secret-path-123"])
def test_a_malformed_webhook_url_fails_at_once_without_quoting_it(url) -> None:
    with pytest.raises(PermanentNotificationError) as raised:
        post_webhook(url, ALERT, timeout=1)
    assert "secret-path-123" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_webhook_connection_refused_is_transient() -> None:
    from sandbox.net import free_port

    with pytest.raises(TransientNotificationError):
        post_webhook(f"http://127.0.0.1:{free_port()}/hook", ALERT, timeout=1)


def test_email_has_a_deterministic_message_id() -> None:
    first = email_message(ALERT, "alerts@example.test", ("ops@example.test",))
    again = email_message(ALERT, "alerts@example.test", ("ops@example.test",))
    assert first["Message-ID"] == again["Message-ID"] == "<f00dfeed.1700000000-abcd1234@episodes-api.alerts>"


def test_a_queued_alert_comes_back_whole_from_its_task_arguments() -> None:
    assert Alert.from_task(asdict(ALERT)) == ALERT


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
    from sandbox.net import free_port

    with pytest.raises(TransientNotificationError):
        send_email(_smtp_config(free_port()), ALERT)


def test_smtp_greets_with_a_fixed_name_instead_of_a_dns_lookup() -> None:
    # smtplib's default (socket.getfqdn) asks the resolver, outside the connection's timeout.
    with SmtpSink() as smtp:
        send_email(_smtp_config(smtp.port), ALERT)
        assert smtp.recorder.greetings == ["localhost"]


def test_a_failed_webhook_post_does_not_carry_its_url() -> None:
    import traceback

    from sandbox.net import free_port

    secret_url = f"http://127.0.0.1:{free_port()}/services/T000/B000/s3cr3t-webhook-token"
    with pytest.raises(TransientNotificationError) as raised:
        post_webhook(secret_url, ALERT, timeout=1)
    assert "s3cr3t-webhook-token" not in "".join(traceback.format_exception(raised.value))
