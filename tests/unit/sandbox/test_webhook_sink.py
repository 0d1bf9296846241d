from __future__ import annotations

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
