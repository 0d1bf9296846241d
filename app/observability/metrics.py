"""Every metric of the service, defined once, and the separate listener that serves them.

Rules, dashboards and tests check their metric names against what this module exports. Under
gunicorn or Celery's prefork pool, `PROMETHEUS_MULTIPROC_DIR` must be set before Python starts:
each worker writes its samples to files there and the listener, running in the parent process so
that scrapes never take a worker, merges them. The directory is wiped when the server starts; a
dead worker's live gauges are dropped and its counters and histograms are folded into one archive
file per type (`mark_dead`), so totals survive restarts and scrapes do not slow down with them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.registry import Collector

# Request latencies in seconds: fine below 100 ms, where a healthy API lives, up to 10 s.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by route template.",
    ["method", "endpoint", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "Time from routing to response, by route template.",
    ["method", "endpoint"], buckets=_LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_FLIGHT = Gauge(
    "http_requests_in_flight", "Requests being handled now.", multiprocess_mode="livesum",
)
AI_CALLS = Counter(
    "ai_calls_total", "Calls to the AI provider, by outcome (success or failed).",
    ["provider", "model", "status"],
)
AI_CALL_DURATION = Histogram(
    "ai_call_duration_seconds", "Duration of calls to the AI provider.",
    ["provider", "model"], buckets=_SLOW_BUCKETS,
)
DB_QUERY_DURATION = Histogram(
    "db_query_duration_seconds", "Duration of SQL statements, by operation.",
    ["operation"], buckets=_QUERY_BUCKETS,
)
DB_SLOW_QUERIES = Counter(
    "db_slow_queries_total", "SQL statements at or above the slow-query threshold.", ["operation"],
)
CELERY_TASKS = Counter(
    "celery_tasks_total", "Celery tasks finished, by outcome (succeeded, failed, retried).",
    ["task", "outcome"],
)
CELERY_TASK_DURATION = Histogram(
    "celery_task_duration_seconds", "Run time of Celery tasks.", ["task"], buckets=_SLOW_BUCKETS,
)
APP_ERRORS = Counter(
    "app_errors_total", "Unhandled exceptions, by exception type.", ["error_type"],
)
ALERT_NOTIFICATIONS = Counter(
    "alert_notifications_total",
    "Error notifications, by channel and outcome (queued, deduplicated, held, dropped, sent, retried, failed).",
    ["channel", "outcome"],
)
ACTIVE_USERS_NAME = "active_users"  # a gauge, computed at scrape time: no _total (the seed's active_users_total)


def prepare_multiproc_dir(path: str) -> None:
    """Empties the shared directory: samples of a previous run must not be merged into this one."""
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


_MERGED_TYPES = ("counter", "histogram")  # summed across processes; gauges keep a pid label
_ARCHIVE = "archive"  # stands where a pid would in the file name: `counter_archive.db`
_LOCK_FILE = ".merge.lock"  # not *.db: never read as metrics


def mark_dead(pid: int, path: str) -> None:
    """A worker process is gone: its live gauges are dropped, and its counters and histograms are
    added into one archive file per type and its own files deleted.

    The client library never deletes a dead worker's files and every scrape reads all of them
    (about 2.6 ms each), so without this a server that recycles workers scrapes slower and slower.
    Totals stay exact: the values move, under a lock that scrapes take too (`build_registry`).
    """
    if not path:
        return
    with _merge_lock(path, exclusive=True):
        multiprocess.mark_process_dead(pid, path)
        for kind in _MERGED_TYPES:
            _move_into_archive(os.path.join(path, f"{kind}_{pid}.db"), os.path.join(path, f"{kind}_{_ARCHIVE}.db"))


def _move_into_archive(dead_file: str, archive_file: str) -> None:
    # Renamed first (no longer *.db): a crash part-way loses one worker's counts, never counts twice.
    moving = dead_file + ".merging"
    try:
        os.rename(dead_file, moving)
    except FileNotFoundError:
        return
    archive = MmapedDict(archive_file)
    try:
        for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(moving):
            total, _ = archive.read_value(key)
            archive.write_value(key, total + value, 0.0)
    finally:
        archive.close()
    os.unlink(moving)


@contextlib.contextmanager
def _merge_lock(path: str, *, exclusive: bool) -> Iterator[None]:
    # flock, not a threading lock: Celery's pool children archive their own files at exit.
    with open(os.path.join(path, _LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


class _ArchiveAwareCollector(multiprocess.MultiProcessCollector):
    """Reads the directory while no dead worker's values are being moved into the archive."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        super().__init__(registry, path=path)
        self._directory = path

    def collect(self) -> Iterable[Any]:
        with _merge_lock(self._directory, exclusive=False):
            return list(super().collect())


def build_registry(multiproc_dir: str, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    if multiproc_dir:
        registry = CollectorRegistry()
        _ArchiveAwareCollector(registry, multiproc_dir)
    else:
        registry = REGISTRY
    for collector in extra:
        registry.register(collector)
    return registry


def serve(registry: CollectorRegistry, address: str, port: int) -> Any:
    """Starts the metrics listener on its own port and address (never 0.0.0.0 by accident)."""
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server


class LabelCache:
    """Label children cached by value: `labels()` costs more than the increment itself."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def get(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            with self._lock:
                child = self._metric.labels(*values)
                self._children[values] = child
        return child


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ENDPOINT = "<unmatched>"  # 404s: never the raw path, which clients choose


def init_http_metrics(hooks: Any) -> None:
    """Request count, duration and in-flight gauge per route template (low-cardinality labels).

    `hooks` is the web process's `observability.request_id.RequestHooks`.
    """
    requests_by_labels = LabelCache(HTTP_REQUESTS)
    durations_by_labels = LabelCache(HTTP_REQUEST_DURATION)

    def enter(_ctx: Any) -> None:
        HTTP_REQUESTS_IN_FLIGHT.inc()

    def record(ctx: Any, req: Any, response: Any) -> None:
        rule = req.url_rule
        endpoint = rule.rule if rule is not None else UNMATCHED_ENDPOINT
        method = req.method if req.method in _KNOWN_METHODS else "OTHER"
        requests_by_labels.get(method, endpoint, str(response.status_code)).inc()
        durations_by_labels.get(method, endpoint).observe(time.perf_counter() - ctx.started)

    def leave(_ctx: Any) -> None:
        HTTP_REQUESTS_IN_FLIGHT.dec()

    hooks.on_start.append(enter)
    hooks.on_response.append(record)
    hooks.on_end.append(leave)
