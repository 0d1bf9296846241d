"""The end-to-end suite's own helpers, without a stack: what they get wrong, every figure and every
wait of the suite gets wrong."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sandbox.env import ROOT, parse_env
from tests.support.e2e_clients import LogFile, seconds
from tests.support.e2e_stack import port_keys, split_credentials
from tests.support.visibility import Visibility, Watch


@pytest.mark.parametrize(("duration", "expected"), [("5s", 5), ("1m30s", 90), ("500ms", 0.5), ("4h", 14_400)])
def test_durations_are_read_as_prometheus_writes_them(duration: str, expected: float) -> None:
    assert seconds(duration) == expected


@pytest.mark.parametrize("bad", ["", "5", "s5", "1m 30s", "5x"])
def test_a_malformed_duration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        seconds(bad)


def test_every_port_of_env_example_gets_its_own_port() -> None:
    keys = port_keys()
    declared = parse_env((ROOT / ".env.example").read_text())
    assert keys == sorted(key for key in declared if key.endswith("_PORT"))
    assert {"APP_PORT", "PROMETHEUS_PORT", "ELASTICSEARCH_TRANSPORT_PORT", "JAEGER_HEALTH_PORT"} <= set(keys)


def test_credentials_are_split_out_of_http_urls_only() -> None:
    urls, auth = split_credentials({"es": "http://elastic:p%40ss@127.0.0.1:9200", "app": "http://127.0.0.1:8000",
                                    "redis": "redis://:pw@127.0.0.1:6379/0", "app_log_file": "/tmp/app.jsonl"})
    assert urls == {"es": "http://127.0.0.1:9200", "app": "http://127.0.0.1:8000",
                    "redis": "redis://:pw@127.0.0.1:6379/0", "app_log_file": "/tmp/app.jsonl"}
    assert auth == {"es": ("elastic", "p@ss")}


def test_the_log_file_is_read_from_its_offset_and_only_in_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    path.write_text('{"n": 1}\n')
    log = LogFile.from_end(path)
    with path.open("a") as file:
        file.write('{"n": 2}\n{"n": 3}\n{"n": ')  # the last record is still being written
    assert log.records() == [{"n": 2}, {"n": 3}]
    assert [offset for offset, _ in log.lines()] == [9, 18]
    with path.open("a") as file:
        file.write("4}\nnot json\n")
    with pytest.raises(AssertionError, match="at byte 36: not JSON"):
        log.records()


def test_a_watch_times_each_signal_on_its_own(tmp_path: Path) -> None:
    visibility = Visibility()
    since = time.time()
    watch = Watch(visibility, since, "start", "helpers", interval=0.01)
    watch.add("fast", "after 0.1 s", lambda: time.time() - since > 0.1 and "fast")
    watch.add("slow", "after 0.4 s", lambda: time.time() - since > 0.4 and "slow")
    watch.start()
    try:
        assert watch.wait("slow", 5) == "slow"  # waiting for one does not delay the other's figure
        assert watch.wait("fast", 5) == "fast"
    finally:
        watch.stop()
    figures = {m.signal: m.seconds for m in visibility.measurements}
    assert 0.1 <= figures["fast"] < 0.3
    assert 0.4 <= figures["slow"] < 0.6

    visibility.mode = "native"
    visibility.write(tmp_path / "visibility.json")
    written = json.loads((tmp_path / "visibility.json").read_text())
    assert [m["signal"] for m in written["measurements"]] == ["fast", "slow"]
    assert "fast" in visibility.table().splitlines()[2]


def test_a_watch_fails_with_the_last_thing_it_saw() -> None:
    watch = Watch(Visibility(), time.time(), "start", "helpers", interval=0.01)
    watch.add("never", "something", lambda: [])
    watch.start()
    try:
        with pytest.raises(pytest.fail.Exception, match=r"never \(something\): not within 0s \(last: \[\]\)"):
            watch.wait("never", 0.05)
    finally:
        watch.stop()


def test_the_fault_load_records_every_answer_and_every_missing_one(tmp_path: Path) -> None:
    from sandbox.net import free_port
    from sandbox.webhook_sink import WebhookSink
    from tests.support.faults import Load, Reliability, Request, between, by_status, latency_ms

    sink = WebhookSink().start_background()
    try:
        sink_requests = [Request("ok", "GET", "/healthz"), Request("missing", "GET", "/nowhere")]
        with Load(sink.url, sink_requests, threads=2, pause=0.01, limit=0.5) as load:
            time.sleep(0.3)
        sent = load.sent()
    finally:
        sink.shutdown()
        sink.server_close()
    with Load(f"http://127.0.0.1:{free_port()}", [Request("refused", "GET", "/")], threads=1, limit=0.2) as refused:
        time.sleep(0.1)
    counts = by_status(sent + refused.sent())
    assert set(counts) == {"200", "404", "ConnectionError"} and counts["200"] >= 2, counts
    assert all(s.body == {"ok": False} for s in sent if s.status == 404)  # error bodies kept for assertions
    assert between(sent, sent[-1].started + 1, sent[-1].started + 2) == []
    assert latency_ms(sent)["p50"] is not None and latency_ms([])["p50"] is None

    reliability = Reliability()
    reliability.record("a fault", "native", 1.26, answered=3)
    reliability.write(tmp_path / "reliability.json")
    written = json.loads((tmp_path / "reliability.json").read_text())
    assert written["faults"] == [{"fault": "a fault", "provider": "native", "figures": {"answered": 3}, "seconds": 1.3}]
    assert reliability.lines() == ["a fault (native, 1s): answered=3"]


def test_metric_totals_add_up_the_matching_samples() -> None:
    from tests.support.metrics_text import metric_total

    text = ('# TYPE http_requests_total counter\n'
            'http_requests_total{endpoint="/a",status="200"} 3.0\n'
            'http_requests_total{endpoint="/a",status="500"} 1.0\n'
            'http_requests_total{endpoint="/b",status="200"} 5.0\n')
    assert metric_total(text, "http_requests_total") == 9
    assert metric_total(text, "http_requests_total", endpoint="/a") == 4
