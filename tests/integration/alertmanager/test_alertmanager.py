"""alertmanager/ against a real Alertmanager 0.31.1 (the pinned build): the rendered configuration
delivers a critical alert to the Slack-compatible webhook and by e-mail with summary, description,
runbook and links, mutes its warning twin while it fires, and reports the resolution."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.net import free_port
from sandbox.webhook_sink import WebhookSink
from tests.support.smtp_sink import SmtpSink
from tests.support.tools import tool_path

pytestmark = pytest.mark.integration

ALERTMANAGER_DIR = Path(__file__).resolve().parents[3] / "alertmanager"
GRAFANA_URL = "http://grafana.test:3000"
WAIT_SECONDS = 15.0

CRITICAL = {"alertname": "HighErrorRate", "severity": "critical", "alertgroup": "http-errors",
            "service": "episodes-api"}
WARNING_TWIN = {**CRITICAL, "severity": "warning"}
OTHER_WARNING = {"alertname": "SlowResponse", "severity": "warning", "alertgroup": "http-latency",
                 "service": "episodes-api", "endpoint": "/api/episodes"}


def annotations(labels: dict[str, str]) -> dict[str, str]:
    anchor = labels["alertname"].lower()
    return {"summary": f"{labels['alertname']} {labels['severity']} summary",
            "description": f"{labels['alertname']} {labels['severity']} description: 7.5%",
            "runbook_url": f"prometheus/runbooks.md#{anchor}", "dashboard_url": "/d/service-red"}


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink().start_background()
    yield sink
    sink.shutdown()
    sink.server_close()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory, webhook: WebhookSink, mailbox: SmtpSink) -> Iterator[str]:
    """A running Alertmanager with the rendered configuration; its URL. Notifications leave 1 s after
    an alert arrives or changes (the production waits are 30 s and 5 m)."""
    binary = tool_path("alertmanager")
    workdir = tmp_path_factory.mktemp("alertmanager")
    env = {"PATH": os.environ["PATH"], "ALERT_WEBHOOK_URL": f"{webhook.url}/hook",
           "SMTP_SMARTHOST": f"127.0.0.1:{mailbox.port}", "SMTP_REQUIRE_TLS": "false",
           "ALERT_EMAIL_FROM": "alertmanager@example.test", "ALERT_EMAIL_TO": "ops@example.test",
           "GRAFANA_URL": GRAFANA_URL, "ALERT_GROUP_WAIT": "1s", "ALERT_GROUP_INTERVAL": "1s"}
    subprocess.run(["sh", ALERTMANAGER_DIR / "render.sh", ALERTMANAGER_DIR, workdir / "config"],
                   env=env, check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={workdir}/config/alertmanager.yml", f"--storage.path={workdir}/data",
         f"--web.listen-address=127.0.0.1:{port}", f"--web.external-url={url}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=1).ok, "Alertmanager ready",
                 (workdir / "alertmanager.log").read_text)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def wait_for(check: Callable[[], Any], what: str, details: Callable[[], Any] = lambda: "") -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"no {what} within {WAIT_SECONDS} s: {details()}")


def post(url: str, labels: dict[str, str], *, resolved: bool = False) -> None:
    alert: dict[str, Any] = {"labels": labels, "annotations": annotations(labels),
                             "generatorURL": f"http://prometheus.test/graph?alert={labels['alertname']}"}
    if resolved:
        alert["endsAt"] = datetime.now(UTC).isoformat()
    requests.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def slack_titles(webhook: WebhookSink) -> list[str]:
    with webhook.state.lock:
        return [m["body"]["attachments"][0]["title"] for m in webhook.state.messages]


def slack_message(webhook: WebhookSink, title: str) -> dict[str, Any]:
    with webhook.state.lock:
        return next(m["body"]["attachments"][0] for m in webhook.state.messages
                    if m["body"]["attachments"][0]["title"] == title)


def mail_with_subject(mailbox: SmtpSink, subject: str) -> Message | None:
    return next((m for m in mailbox.messages if m["Subject"] == subject), None)


def mail_text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def test_critical_pages_both_channels_mutes_its_twin_and_resolves(
    alertmanager: str, webhook: WebhookSink, mailbox: SmtpSink,
) -> None:
    for labels in (CRITICAL, WARNING_TWIN, OTHER_WARNING):
        post(alertmanager, labels)

    critical_title = "[FIRING:1] HighErrorRate (critical) on episodes-api"
    expected = {critical_title, "[FIRING:1] SlowResponse (warning) on episodes-api"}
    wait_for(lambda: expected <= set(slack_titles(webhook)), "Slack notifications", lambda: slack_titles(webhook))
    mail = wait_for(lambda: mail_with_subject(mailbox, critical_title), "e-mail",
                    lambda: [m["Subject"] for m in mailbox.messages])

    slack = slack_message(webhook, critical_title)
    for body in (slack["text"], mail_text(mail)):
        assert "HighErrorRate critical summary" in body
        assert "HighErrorRate critical description: 7.5%" in body
        assert "Runbook: prometheus/runbooks.md#higherrorrate" in body
        assert f"Dashboard: {GRAFANA_URL}/d/service-red" in body
        assert "Source: http://prometheus.test/graph?alert=HighErrorRate" in body
        assert f"Silence or inspect: {alertmanager}/#/alerts?receiver=slack-and-email" in body
    assert slack["title_link"] == f"{alertmanager}/#/alerts?receiver=slack-and-email"
    assert mail["To"] == "ops@example.test"
    # A warning goes to Slack only; the critical's twin is muted while the critical fires.
    time.sleep(2)
    assert not [t for t in slack_titles(webhook) if "HighErrorRate (warning)" in t]
    assert len([m for m in mailbox.messages if "SlowResponse" in m["Subject"]]) == 0

    post(alertmanager, CRITICAL, resolved=True)
    resolved_title = "[RESOLVED] HighErrorRate (critical) on episodes-api"
    wait_for(lambda: resolved_title in slack_titles(webhook), "resolved Slack notification",
             lambda: slack_titles(webhook))
    resolved_mail = wait_for(lambda: mail_with_subject(mailbox, resolved_title), "resolved e-mail",
                             lambda: [m["Subject"] for m in mailbox.messages])
    assert "RESOLVED: HighErrorRate critical summary" in mail_text(resolved_mail)
    # With the critical gone, the warning that still fires is no longer muted.
    wait_for(lambda: "[FIRING:1] HighErrorRate (warning) on episodes-api" in slack_titles(webhook),
             "the twin's notification once the critical resolved", lambda: slack_titles(webhook))
