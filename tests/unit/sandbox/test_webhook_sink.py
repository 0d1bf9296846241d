from __future__ import annotations

import time

import requests

from sandbox.webhook_sink import WebhookSink


def test_sink_records_and_replays_scripted_failures() -> None:
    sink = WebhookSink().start_background()
    try:
        requests.post(f"{sink.url}/_script", json=[{"status": 500}], timeout=5)
        assert requests.post(f"{sink.url}/hook", json={"text": "a"}, timeout=5).status_code == 500
        assert requests.post(f"{sink.url}/hook", json={"text": "b"}, timeout=5).status_code == 200
        listed = requests.get(f"{sink.url}/messages", timeout=5).json()
        assert listed["attempts"] == 2
        assert [m["body"]["text"] for m in listed["messages"]] == ["b"]
        assert requests.post(f"{sink.url}/hook", data=b"{not json", timeout=5).status_code == 400
        requests.delete(f"{sink.url}/messages", timeout=5)
        assert requests.get(f"{sink.url}/messages", timeout=5).json()["messages"] == []
    finally:
        sink.shutdown()
        sink.server_close()


def test_a_matching_script_fails_only_the_posts_it_names_and_every_attempt_is_logged() -> None:
    sink = WebhookSink().start_background()
    try:
        requests.post(f"{sink.url}/_script", timeout=5, json=[
            {"status": 500, "match": "[CRITICAL] ChaosError"},
            {"status": 429, "retry_after": 3, "match": "ChaosError"}])
        statuses = [requests.post(f"{sink.url}/hook", json={"text": text}, timeout=5)
                    for text in ("[FIRING:1] HighErrorRate", "[CRITICAL] ChaosError in api",
                                 "[CRITICAL] ChaosError in api", "[CRITICAL] ChaosError in api")]
        assert [r.status_code for r in statuses] == [200, 500, 429, 200]
        assert statuses[2].headers["Retry-After"] == "3"
        listed = requests.get(f"{sink.url}/messages", timeout=5).json()
        assert [m["body"]["text"] for m in listed["messages"]] == ["[FIRING:1] HighErrorRate",
                                                                  "[CRITICAL] ChaosError in api"]
        log = listed["attempt_log"]
        assert [(a["status"], a["text"][:10]) for a in log] == [
            (200, "[FIRING:1]"), (500, "[CRITICAL]"), (429, "[CRITICAL]"), (200, "[CRITICAL]")]
        assert all(a["path"] == "/hook" for a in log) and log[0]["at"] <= log[-1]["at"]
    finally:
        sink.shutdown()
        sink.server_close()


def test_a_trickled_answer_outlasts_the_clients_read_timeout_and_is_not_kept() -> None:
    sink = WebhookSink().start_background()
    try:
        requests.post(f"{sink.url}/_script", json=[{"status": 200, "trickle_s": 3}], timeout=5)
        began = time.monotonic()
        # Every read gets a byte within 2 s, so only the whole answer's length bounds the call.
        response = requests.post(f"{sink.url}/hook", json={"text": "slow"}, timeout=2)
        assert response.status_code == 200
        assert response.content == b"   "
        assert time.monotonic() - began >= 3
        listed = requests.get(f"{sink.url}/messages", timeout=5).json()
        assert listed["messages"] == []
        assert [(a["status"], a["text"]) for a in listed["attempt_log"]] == [(200, "slow")]
    finally:
        sink.shutdown()
        sink.server_close()
