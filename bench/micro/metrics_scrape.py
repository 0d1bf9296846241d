"""Micro-benchmark (d): how long one `/metrics` collection takes with 1, 2 and 4 live workers'
files, after 0 and 100 worker restarts.

Every worker and every restart is a real forked process that records the project's HTTP metrics
(10 route templates, 3 statuses each, duration histograms, the in-flight gauge) into the multiprocess
directory and exits; the parent then calls `observability.metrics_multiprocess.mark_dead(pid, dir)`, exactly as
gunicorn's `child_exit` hook does. Live workers stay alive (blocked on a pipe) while the parent
collects as the product's listener does: `build_registry(dir)` and `generate_latest`. The merged
`http_requests_total` is checked against what the processes recorded: restarts must not lose counts.
PROMETHEUS_MULTIPROC_DIR is set by the runner before Python starts, as under gunicorn.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from prometheus_client import generate_latest

from bench.micro.scale import Scale
from observability import metrics, metrics_multiprocess
from observability.http_metrics import UNMATCHED_ENDPOINT

ROUTES = (
    "/api/episodes", "/api/episodes/<int:episode_id>", "/api/episodes/<int:episode_id>/extract",
    "/api/episodes/<int:episode_id>/extract-async", "/api/episodes/<int:episode_id>/assets",
    "/admin/chaos", "/admin/errors", "/healthz", "/readyz", UNMATCHED_ENDPOINT,
)
STATUSES = ("200", "404", "500")
REQUESTS_PER_SERIES = 7
# Request durations spread over the histogram's buckets, in seconds.
DURATIONS = (0.002, 0.007, 0.02, 0.04, 0.08, 0.2, 0.4, 0.9, 2.0, 4.0, 12.0)


def _record() -> None:
    """One worker's traffic, through the project's metric objects."""
    for route in ROUTES:
        for status in STATUSES:
            metrics.HTTP_REQUESTS.labels("GET", route, status).inc(REQUESTS_PER_SERIES)
        histogram = metrics.HTTP_REQUEST_DURATION.labels("GET", route)
        for duration in DURATIONS:
            histogram.observe(duration)
    metrics.HTTP_REQUESTS_IN_FLIGHT.inc()
    metrics.HTTP_REQUESTS_IN_FLIGHT.dec()


def _fork_worker(hold: bool) -> tuple[int, int | None]:
    """A forked process that records and then exits (or, with `hold`, waits to be released).

    Returns its pid and, with `hold`, the descriptor that releases it (one byte written to it: closing
    it would not do, since workers forked later hold copies of it).
    """
    ready_read, ready_write = os.pipe()
    release_read, release_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the benchmark
        status = 1
        try:
            os.close(ready_read)
            os.close(release_write)
            _record()
            os.write(ready_write, b"1")
            if hold:
                os.read(release_read, 1)
            status = 0
        finally:
            os._exit(status)
    os.close(ready_write)
    os.close(release_read)
    if os.read(ready_read, 1) != b"1":
        raise RuntimeError(f"worker {pid} failed to record its metrics")
    os.close(ready_read)
    if hold:
        return pid, release_write
    os.close(release_write)
    return pid, None


def _reap(pid: int, directory: str) -> None:
    os.waitpid(pid, 0)
    metrics_multiprocess.mark_dead(pid, directory)  # what gunicorn's child_exit hook does


def _scenario(directory: str, live: int, restarts: int, repeats: int) -> dict[str, Any]:
    metrics_multiprocess.prepare_multiproc_dir(directory)  # as at server start
    for _ in range(restarts):
        pid, _release = _fork_worker(hold=False)
        _reap(pid, directory)
    workers = [_fork_worker(hold=True) for _ in range(live)]
    try:
        files = len(os.listdir(directory))
        registry = metrics_multiprocess.build_registry(directory)
        timings_ms = []
        for _ in range(repeats):
            started = time.perf_counter()
            output = generate_latest(registry)
            timings_ms.append((time.perf_counter() - started) * 1000)
    finally:
        for pid, release in workers:
            if release is not None:
                os.write(release, b"1")
                os.close(release)
            _reap(pid, directory)
    counted = _requests_total(output)
    expected = (live + restarts) * len(ROUTES) * len(STATUSES) * REQUESTS_PER_SERIES
    return {
        "live_workers": live,
        "restarts": restarts,
        "median_ms": round(statistics.median(timings_ms), 3),
        "samples_ms": [round(t, 3) for t in timings_ms],
        "files": files,
        "output_bytes": len(output),
        "requests_total_counted": counted,
        "requests_total_expected": expected,
        "counts_preserved": counted == expected,
    }


def _requests_total(output: bytes) -> float:
    return sum(float(line.rsplit(b" ", 1)[1]) for line in output.splitlines()
               if line.startswith(b"http_requests_total{"))


def measure(scale: Scale) -> dict[str, Any]:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    scenarios = [_scenario(directory, live, restarts, scale.scrape_repeats)
                 for restarts in scale.restarts for live in scale.live_workers]
    return {
        "method": ("build_registry(dir) + generate_latest, real forked workers recording 10 routes x 3 statuses "
                   "with histograms, mark_dead(pid, dir) after each exit as gunicorn's child_exit does, "
                   f"median of {scale.scrape_repeats} collections"),
        "scenarios": scenarios,
    }
