"""A real Celery worker: queued extraction, request-id and trace propagation, error notifications."""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.conftest import ADMIN, wait_until
from tests.support.metrics_text import metric_total

pytestmark = pytest.mark.integration
SCRIPT = "INT. ATTIC - NIGHT\nNOOR\nFind the [lantern]."


def _episode(client) -> int:
    return client.post("/api/episodes", json={"title": "Queued", "script": SCRIPT}).get_json()["id"]


def test_queued_extraction_runs_in_the_worker_under_the_request_id(client, worker) -> None:
    episode_id = _episode(client)
    response = client.post(f"/api/episodes/{episode_id}/extract-async", headers={"X-Request-ID": "queued-req-0001"})
    assert response.status_code == 202
    task_id = response.get_json()["task_id"]
    done = worker.wait_for_record(lambda r: r.get("event") == "assets_extracted" and r.get("episode_id") == episode_id)
    assert done["request_id"] == "queued-req-0001"
    assert done["service"]["name"] == "episodes-worker"
    assert done["task"] == {"id": task_id, "name": "service.extract_assets"}
    assets = client.get(f"/api/episodes/{episode_id}/assets").get_json()["assets"]
    assert {a["name"] for a in assets} == {"Attic", "Noor", "lantern"}
    metrics = requests.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5).text
    assert metric_total(metrics, "celery_tasks_total", task="service.extract_assets", outcome="succeeded") >= 1
    assert metric_total(metrics, "ai_calls_total", provider="simulated", status="success") >= 1


def test_task_spans_join_the_request_trace(client, worker, otlp_sink, log_lines) -> None:
    episode_id = _episode(client)
    log_lines.read()
    client.post(f"/api/episodes/{episode_id}/extract-async")
    (access,) = log_lines.events("api_access")
    spans = otlp_sink.wait_for(access["trace_id"], {
        "POST /api/episodes/<id:episode_id>/extract-async", "apply_async/service.extract_assets",
        "run/service.extract_assets", "extract_assets", "load_episode", "ai_call", "save_assets"})
    by_name = {s.name: s for s in spans}
    run = by_name["run/service.extract_assets"]
    assert run.parent_span_id == by_name["apply_async/service.extract_assets"].span_id
    assert by_name["extract_assets"].parent_span_id == run.span_id
    # One trace, two services of one namespace: the worker is told apart from the web process.
    assert {(s.service, s.namespace) for s in spans if s.name in {"run/service.extract_assets", "extract_assets"}} \
        == {("episodes-worker", "episodes")}
    assert by_name["POST /api/episodes/<id:episode_id>/extract-async"].service == "episodes-api"
    assert any(s.attributes.get("db.system") == "postgresql" for s in spans)
    assert any(s.name.startswith(("SET", "ZADD", "HGETALL", "BRPOP", "LPUSH")) or
               s.attributes.get("db.system") == "redis" for s in spans)


def _storm(client, requests_count: int) -> None:
    client.put("/admin/chaos", json={"error_rate": 1.0}, headers=ADMIN)
    try:
        for _ in range(requests_count):
            assert client.get("/api/episodes").status_code == 500
    finally:
        client.put("/admin/chaos", json={}, headers=ADMIN)
    # The alerts leave through the notifier's outbox thread: once it is empty, each is claimed (or
    # deduplicated) and queued, and none can surface in the next test after its Redis is flushed.
    outbox = client.application.extensions["observability"].notifier.outbox
    wait_until(lambda: len(outbox) == 0, what="the alert outbox empty")


def _webhook_messages(sink) -> list[dict]:
    return requests.get(f"{sink.url}/messages", timeout=5).json()["messages"]


def test_an_error_storm_sends_one_notification_per_channel(client, worker, webhook_sink, smtp_sink) -> None:
    _storm(client, 25)
    wait_until(lambda: _webhook_messages(webhook_sink) and smtp_sink.messages, what="both notifications")
    time.sleep(2)  # would-be duplicates have time to arrive
    (message,) = _webhook_messages(webhook_sink)
    assert message["body"]["text"].startswith("[CRITICAL] ChaosError in episodes-api")
    fields = {f["title"]: f["value"] for f in message["body"]["attachments"][0]["fields"]}
    assert fields["request_id"] and fields["trace_id"] and fields["endpoint"] == "GET /api/episodes"
    (mail,) = smtp_sink.messages
    assert mail["Subject"] == message["body"]["text"]


def test_transient_webhook_failures_are_retried_and_delivered_once(client, worker, webhook_sink, smtp_sink) -> None:
    requests.post(f"{webhook_sink.url}/_script", json=[{"status": 500}, {"status": 429, "retry_after": 1}],
                  timeout=5)
    _storm(client, 1)
    wait_until(lambda: _webhook_messages(webhook_sink), timeout=30, what="webhook delivery after retries")
    time.sleep(1.5)
    listed = requests.get(f"{webhook_sink.url}/messages", timeout=5).json()
    assert listed["attempts"] == 3
    assert len(listed["messages"]) == 1
    retries = worker.records()
    assert sum(1 for r in retries if r.get("event") == "notification_retry" and r.get("channel") == "webhook") >= 2


def test_an_attempt_that_hangs_is_cut_off_logged_where_it_hung_and_retried(client, worker, webhook_sink,
                                                                          smtp_sink) -> None:
    # An answer trickled over a minute: no read waits longer than the timeout, so only the task's
    # time limit (3 x NOTIFY_TIMEOUT_SECONDS = 6 s here) ends the attempt.
    requests.post(f"{webhook_sink.url}/_script", json=[{"status": 200, "trickle_s": 60, "match": "[CRITICAL]"}],
                  timeout=5)
    began = time.monotonic()
    _storm(client, 1)
    wait_until(lambda: _webhook_messages(webhook_sink), timeout=40, what="webhook delivery after the hung attempt")
    assert time.monotonic() - began < 40  # the retry went out long before the trickle's end
    (hung,) = [r for r in worker.records() if r.get("event") == "notification_hung"]
    assert (hung["channel"], hung["limit_s"]) == ("webhook", 6)
    assert "SoftTimeLimitExceeded" in hung["error"]["stack_trace"]
    assert "post_webhook" in hung["error"]["stack_trace"]  # where it hung
    listed = requests.get(f"{webhook_sink.url}/messages", timeout=5).json()
    assert [a["status"] for a in listed["attempt_log"]] == [200, 200]
    assert len(listed["messages"]) == 1


def test_a_permanent_failure_frees_the_fingerprint_for_the_next_occurrence(client, worker, webhook_sink,
                                                                          smtp_sink) -> None:
    smtp_sink.recorder.reject_with = "550 5.1.1 mailbox unavailable"
    requests.post(f"{webhook_sink.url}/_script", json=[{"status": 404}], timeout=5)
    _storm(client, 1)
    wait_until(lambda: requests.get(f"{webhook_sink.url}/messages", timeout=5).json()["attempts"] == 1,
               what="first webhook attempt")
    time.sleep(1)
    assert _webhook_messages(webhook_sink) == []
    smtp_sink.recorder.reject_with = None
    _storm(client, 1)  # same fingerprint, but the failed notification released its claim
    wait_until(lambda: _webhook_messages(webhook_sink) and smtp_sink.messages, what="second notification")
