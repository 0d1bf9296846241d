"""The shared directory: dead workers folded into one archive per type, totals exact under scrapes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import multiprocess

from observability.metrics_multiprocess import build_registry, mark_dead

# Dead workers' files: real processes write them (multiprocess mode is chosen when Python starts).
_RECORDER = """
import os, sys
from observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS, HTTP_REQUESTS_IN_FLIGHT
for worker in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        for request in range(worker + 1):
            HTTP_REQUESTS.labels("GET", "/items/<int:item_id>", "200").inc()
            HTTP_REQUEST_DURATION.labels("GET", "/items/<int:item_id>").observe(0.02 * (request + 1))
        HTTP_REQUESTS_IN_FLIGHT.inc()
        os._exit(0)
    os.waitpid(pid, 0)
    print(pid)
"""


def _run_workers(directory: Path, count: int) -> list[int]:
    done = subprocess.run([sys.executable, "-c", _RECORDER, str(count)], capture_output=True, text=True, check=True,
                          env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}, timeout=60)
    return [int(line) for line in done.stdout.split()]


def _scrape(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for metric in build_registry(str(directory)).collect() for sample in metric.samples
            if not sample.name.startswith("http_requests_in_flight")}


def test_dead_workers_files_are_folded_into_one_archive_per_type_and_totals_stay_exact(tmp_path) -> None:
    expected_total = 0
    for count in (4, 3):  # a second round of restarts adds to the same archive
        pids = _run_workers(tmp_path, count)
        expected_total += sum(range(1, count + 1))
        before = _scrape(tmp_path)
        for pid in pids:
            mark_dead(pid, str(tmp_path))
        assert _scrape(tmp_path) == pytest.approx(before)  # sums are added in another order
        left = sorted(name for name in os.listdir(tmp_path) if name.startswith(("counter_", "histogram_")))
        assert left == ["counter_archive.db", "histogram_archive.db"]
    totals = _scrape(tmp_path)
    labels = (("endpoint", "/items/<int:item_id>"), ("method", "GET"))
    assert totals[("http_requests_total", tuple(sorted((*labels, ("status", "200")))))] == expected_total
    assert totals[("http_request_duration_seconds_count", labels)] == expected_total
    assert totals[("http_request_duration_seconds_bucket", tuple(sorted((*labels, ("le", "+Inf")))))] == expected_total
    # A worker that served n requests observed 0.02 * (1 + ... + n) seconds.
    assert totals[("http_request_duration_seconds_sum", labels)] == pytest.approx(0.02 * (1 + 3 + 6 + 10 + 1 + 3 + 6))


def _in_flight(directory: Path) -> list[float]:
    return [sample.value for metric in build_registry(str(directory)).collect() for sample in metric.samples
            if sample.name == "http_requests_in_flight"]


def test_a_dead_workers_in_flight_gauge_is_dropped(tmp_path) -> None:
    (pid,) = _run_workers(tmp_path, 1)
    assert _in_flight(tmp_path) == [1.0]
    mark_dead(pid, str(tmp_path))
    assert _in_flight(tmp_path) in ([], [0.0])


def test_scrapes_during_the_merge_never_see_a_total_go_down_or_count_twice(tmp_path) -> None:
    pids = _run_workers(tmp_path, 60)
    expected = sum(range(1, 61))
    key = ("http_requests_total", (("endpoint", "/items/<int:item_id>"), ("method", "GET"), ("status", "200")))
    seen: list[float] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def scrape_repeatedly() -> None:
        while not stop.is_set():
            try:
                seen.append(_scrape(tmp_path)[key])
            except Exception as exc:  # e.g. a file renamed between the directory listing and its read
                errors.append(exc)

    scraper = threading.Thread(target=scrape_repeatedly)
    scraper.start()
    try:
        for pid in pids:
            mark_dead(pid, str(tmp_path))
    finally:
        stop.set()
        scraper.join(timeout=30)
    assert errors == []
    assert seen and set(seen) == {expected}
    assert _scrape(tmp_path)[key] == expected


def test_a_worker_forked_during_a_scrape_does_not_keep_the_merge_lock(tmp_path, monkeypatch) -> None:
    # A descriptor holding the scrape's shared lock, inherited by a worker, would keep the lock for
    # the worker's life: the master's next mark_dead (exclusive) then hung until that worker exited.
    registry = build_registry(str(tmp_path))
    inside, leave = threading.Event(), threading.Event()

    def slow_collect(_collector: object) -> list:
        inside.set()
        leave.wait(10)
        return []

    monkeypatch.setattr(multiprocess.MultiProcessCollector, "collect", slow_collect)
    scrape = threading.Thread(target=lambda: list(registry.collect()))
    scrape.start()
    assert inside.wait(10)
    threading.Timer(0.5, leave.set).start()  # the scrape ends while the fork waits for it
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    try:
        scrape.join(10)
        marking = threading.Thread(target=mark_dead, args=(12345, str(tmp_path)), daemon=True)
        marking.start()
        marking.join(5)
        assert not marking.is_alive(), "mark_dead waits for the forked worker to exit"
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
