"""gunicorn with several workers: metrics merged across workers, served by the master on its own
loopback port, totals kept when a worker is killed; gunicorn's own records are JSON."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from sandbox.net import free_port
from tests.integration.conftest import ServerProcess, start_process, wait_until
from tests.support.metrics_text import metric_total
from tests.support.tools import tool_path

pytestmark = pytest.mark.integration


def _children(pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.add(int(entry.name))
    return children


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp, IPv4)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            addresses.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return addresses


@contextmanager
def _gunicorn(service_env: dict[str, str], workdir: Path, **extra_env: str) -> Iterator[ServerProcess]:
    port, metrics_port = free_port(), free_port()
    env = {**service_env, "APP_BIND": f"127.0.0.1:{port}", "METRICS_PORT": str(metrics_port),
           "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"), **extra_env}
    args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    server = ServerProcess(start_process(args, env, workdir / "gunicorn.log"), workdir / "gunicorn.log",
                           metrics_port, port)
    try:
        wait_until(lambda: len(_children(server.process.pid)) == 2, what="two gunicorn workers")
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), what="gunicorn answering")
        yield server
    finally:
        server.stop()


@pytest.fixture
def gunicorn(service_env, tmp_path, clean_state) -> Iterator[ServerProcess]:
    with _gunicorn(service_env, tmp_path) as server:
        yield server


@pytest.fixture
def silent_collector() -> Iterator[str]:
    """A TCP listener that accepts connections and never answers: the worst collector there is."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def _episodes_total(server: ServerProcess) -> float:
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    return metric_total(text, "http_requests_total", endpoint="/api/episodes", method="GET", status="200")


def test_counts_are_exact_across_workers_and_survive_a_killed_worker(gunicorn) -> None:
    base = f"http://127.0.0.1:{gunicorn.port}"
    with ThreadPoolExecutor(4) as pool:  # concurrent clients: a busy sync worker leaves the next to the other
        statuses = list(pool.map(lambda _: requests.get(f"{base}/api/episodes", timeout=10).status_code, range(60)))
    assert statuses == [200] * 60
    assert _episodes_total(gunicorn) == 60
    served_by = {r["pid"] for r in gunicorn.records() if r.get("event") == "api_access"}
    assert len(served_by) == 2

    victim = min(_children(gunicorn.process.pid))
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in _children(gunicorn.process.pid) and len(_children(gunicorn.process.pid)) == 2,
               what="a replacement worker")
    wait_until(lambda: _answers(f"{base}/healthz"), what="answering again")
    for _ in range(25):
        assert requests.get(f"{base}/api/episodes", timeout=5).status_code == 200
    assert _episodes_total(gunicorn) == 85


def test_metrics_are_served_by_the_master_on_loopback_only(gunicorn) -> None:
    assert requests.get(f"http://127.0.0.1:{gunicorn.port}/metrics", timeout=5).status_code == 404
    assert _listening_addresses(gunicorn.metrics_port) == {"127.0.0.1"}
    text = requests.get(f"http://127.0.0.1:{gunicorn.metrics_port}/metrics", timeout=5).text
    assert "http_requests_in_flight" in text


def test_a_stuck_collector_neither_fails_nor_holds_requests(service_env, tmp_path, clean_state,
                                                           silent_collector) -> None:
    # Exports wait up to 10 s for this collector, and spans pile up every 50 ms: requests must not care.
    with _gunicorn(service_env, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=silent_collector,
                   OTEL_EXPORTER_OTLP_TIMEOUT="10", OTEL_BSP_SCHEDULE_DELAY="50") as server:
        for _ in range(40):
            response = requests.get(f"http://127.0.0.1:{server.port}/api/episodes", timeout=2)
            assert response.status_code == 200


@pytest.mark.parametrize(("headers", "path"), [
    ({"X-Big": "x" * 10_000}, "/api/episodes"),  # over limit_request_field_size
    ({f"X-H{i}": "1" for i in range(150)}, "/api/episodes"),  # over limit_request_fields
    ({}, "/api/episodes?" + "q" * 6000),  # over limit_request_line
])
def test_oversized_requests_are_refused_with_a_4xx(gunicorn, headers, path) -> None:
    response = requests.get(f"http://127.0.0.1:{gunicorn.port}{path}", headers=headers, timeout=5)
    assert 400 <= response.status_code < 500
    assert requests.get(f"http://127.0.0.1:{gunicorn.port}/healthz", timeout=5).status_code == 200


def test_gunicorn_records_are_json_in_the_system_layer(gunicorn) -> None:
    records = gunicorn.records()  # fails on any non-JSON line
    booting = [r for r in records if r["logger"] == "gunicorn.error" and "Booting worker" in r["message"]]
    assert len(booting) == 2
    assert all(r["layer"] == "system" for r in booting)


def test_web_and_worker_metrics_pass_promtool_check_metrics(gunicorn, worker) -> None:
    """The Prometheus project's own linter on the real expositions: names, suffixes, units, help."""
    base = f"http://127.0.0.1:{gunicorn.port}"
    created = requests.post(f"{base}/api/episodes", json={"title": "lint", "script": "INT. LAB - DAY\nIDA"},
                            headers={"X-User-ID": "lint-user"}, timeout=10)
    episode = created.json()["id"]
    assert requests.post(f"{base}/api/episodes/{episode}/extract", timeout=10).status_code == 200
    assert requests.post(f"{base}/api/episodes/{episode}/extract-async", timeout=10).status_code == 202
    worker_url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    wait_until(lambda: "celery_tasks_total" in requests.get(worker_url, timeout=5).text, what="the task's metrics")
    web = requests.get(f"http://127.0.0.1:{gunicorn.metrics_port}/metrics", timeout=5).text
    assert "active_users" in web and "ai_calls_total" in web  # the gauge computed at scrape time, too
    for process, exposition in (("web", web), ("worker", requests.get(worker_url, timeout=5).text)):
        done = subprocess.run([tool_path("promtool"), "check", "metrics"], input=exposition,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{process}: {done.stdout}{done.stderr}"
