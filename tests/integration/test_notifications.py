"""Alert notifications across real outages: Redis (claims and broker) down while errors happen, a
web process killed while it held alerts, and one channel failing for good, with the service in
this process (or in processes of its own) and a real Celery worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.conftest import ADMIN, APP_DIR, wait_until
from tests.support.services import RedisServer

pytestmark = pytest.mark.integration
TITLE = "[CRITICAL] ChaosError in episodes-api (integration)"
SETTLE_SECONDS = 2.0  # would-be duplicates have time to arrive


def _webhook_titles(sink: Any) -> list[str]:
    messages = requests.get(f"{sink.url}/messages", timeout=5).json()["messages"]
    return [m["body"]["text"] for m in messages]


def _mail_subjects(smtp_sink: Any) -> list[str]:
    return [m["Subject"] for m in smtp_sink.messages]


@pytest.fixture
def chaos(client: Any) -> Iterator[None]:
    """error_rate 1 for /api requests; knobs back to their defaults afterwards, Redis permitting."""
    assert client.put("/admin/chaos", json={"error_rate": 1.0}, headers=ADMIN).status_code == 200
    yield
    client.put("/admin/chaos", json={}, headers=ADMIN)


@pytest.mark.timeout(180)
def test_an_error_during_a_redis_outage_is_notified_once_per_channel_after_it(
    app: Any, client: Any, chaos: None, worker: Any, redis_server: RedisServer, webhook_sink: Any, smtp_sink: Any
) -> None:
    notifier = app.extensions["observability"].notifier
    time.sleep(0.3)  # CHAOS_REFRESH_SECONDS: the knob is read, and kept while Redis is away
    redis_server.stop()
    try:
        statuses = [client.get("/api/episodes").status_code for _ in range(5)]
        assert statuses == [500] * 5  # the errors still get their JSON 500
        assert len(notifier.outbox) == 1  # one fingerprint, held
        time.sleep(3)  # the outbox retries meanwhile, in vain
        assert _webhook_titles(webhook_sink) == [] and smtp_sink.messages == []
    finally:
        redis_server.start()
    client.put("/admin/chaos", json={}, headers=ADMIN)
    wait_until(lambda: _webhook_titles(webhook_sink) and smtp_sink.messages, timeout=90,
               what="both notifications after Redis came back")
    time.sleep(SETTLE_SECONDS)
    assert _webhook_titles(webhook_sink) == [TITLE]
    assert _mail_subjects(smtp_sink) == [TITLE]
    assert len(notifier.outbox) == 0


# A web process of the service fails a request while Redis (claims and broker) is down, waits until
# its alert is spooled, and is killed: no clean exit, no handler runs.
_KILLED_WITH_AN_ALERT_HELD = """
import glob, os, signal, time
from service import create_app
app = create_app()
@app.get("/fails-during-the-outage")
def fails():
    raise RuntimeError("held when the process was killed")
assert app.test_client().get("/fails-during-the-outage").status_code == 500
deadline = time.monotonic() + 5
while not glob.glob(os.path.join(os.environ["ALERT_SPOOL_DIR"], "*.json")) and time.monotonic() < deadline:
    time.sleep(0.05)
os.kill(os.getpid(), signal.SIGKILL)
"""
# The next web process starts after the outage and does nothing but live until its outbox is empty.
_STARTED_AFTER_THE_OUTAGE = """
import time
from service import create_app
outbox = create_app().extensions["observability"].notifier.outbox
deadline = time.monotonic() + 30
while len(outbox) and time.monotonic() < deadline:
    time.sleep(0.05)
"""


def _run_service_process(program: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", program], cwd=APP_DIR, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.timeout(180)
def test_an_alert_held_by_a_web_process_killed_during_an_outage_is_sent_by_the_next_one(
    service_env: dict[str, str], clean_state: None, worker: Any, redis_server: RedisServer, webhook_sink: Any,
    smtp_sink: Any, tmp_path: Path,
) -> None:
    spool = tmp_path / "alert-spool"
    env = {**os.environ, **service_env, "ALERT_SPOOL_DIR": str(spool)}
    redis_server.stop()
    try:
        killed = _run_service_process(_KILLED_WITH_AN_ALERT_HELD, env)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    finally:
        redis_server.start()
    started = _run_service_process(_STARTED_AFTER_THE_OUTAGE, env)
    assert started.returncode == 0, started.stderr[-3000:]
    title = "[CRITICAL] RuntimeError in episodes-api (integration)"
    wait_until(lambda: _webhook_titles(webhook_sink) and smtp_sink.messages, timeout=90,
               what="both notifications of the killed process's alert")
    time.sleep(SETTLE_SECONDS)
    assert _webhook_titles(webhook_sink) == [title]
    assert _mail_subjects(smtp_sink) == [title]
    assert list(spool.glob("*.json")) == []


def test_one_channels_permanent_failure_does_not_send_the_other_twice(
    client: Any, chaos: None, worker: Any, webhook_sink: Any, smtp_sink: Any
) -> None:
    smtp_sink.recorder.reject_with = "550 5.1.1 mailbox unavailable"
    seen = len(worker.records())  # the session's worker: earlier tests' records come first
    assert client.get("/api/episodes").status_code == 500
    wait_until(lambda: _webhook_titles(webhook_sink), what="the webhook notification")
    wait_until(lambda: any("email notification failed" in str(r) for r in worker.records()[seen:]),
               what="the e-mail's permanent failure")
    smtp_sink.recorder.reject_with = None
    assert client.get("/api/episodes").status_code == 500  # the same error again: only e-mail was freed
    wait_until(lambda: smtp_sink.messages, what="the e-mail of the second occurrence")
    time.sleep(SETTLE_SECONDS)
    assert _webhook_titles(webhook_sink) == [TITLE]
    assert _mail_subjects(smtp_sink) == [TITLE]
