"""The instrumentation's metrics, each defined once, and the way to declare more.

Rules, dashboards and tests check their metric names against what is declared here and by the
service (`service.metrics`). Declare an application's own metrics with `counter`, `histogram` and
`gauge`: they register on the default registry, which the multiprocess listener reads
(`observability.metrics_multiprocess`), and a gauge must say how its values of several processes
combine. Under gunicorn or Celery's prefork pool `PROMETHEUS_MULTIPROC_DIR` must be set before
Python starts: each process writes its samples to files there.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

from prometheus_client import Counter, Gauge, Histogram

# Request latencies in seconds: fine below 100 ms, where a healthy API lives, up to 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Calls to other services and background tasks: tens of milliseconds to a minute.
SLOW_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# How a gauge's values from several processes combine in the merged view; the client's default
# ("all") keeps one series per pid, which is rarely what a dashboard wants.
GaugeMode = Literal["livesum", "livemax", "livemin", "liveall", "sum", "max", "min", "mostrecent", "all"]


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A counter; `name` ends in `_total`, as Prometheus reserves that suffix for counters."""
    if not name.endswith("_total"):
        raise ValueError(f"counter {name!r} must end in _total")
    return Counter(name, documentation, list(labels))


def histogram(name: str, documentation: str, labels: Sequence[str] = (),
              buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
    """A histogram; `name` ends in its unit (`_seconds`, `_bytes`)."""
    return Histogram(name, documentation, list(labels), buckets=tuple(buckets))


def gauge(name: str, documentation: str, mode: GaugeMode, labels: Sequence[str] = ()) -> Gauge:
    """A gauge; `mode` is required: it decides what a scrape of several processes shows."""
    if name.endswith("_total"):
        raise ValueError(f"gauge {name!r} must not end in _total (reserved for counters)")
    return Gauge(name, documentation, list(labels), multiprocess_mode=mode)


HTTP_REQUESTS = counter(
    "http_requests_total", "HTTP requests answered, by route template.", ["method", "endpoint", "status"])
HTTP_REQUEST_DURATION = histogram(
    "http_request_duration_seconds", "Time from routing to response, by route template.", ["method", "endpoint"])
HTTP_REQUESTS_IN_FLIGHT = gauge("http_requests_in_flight", "Requests being handled now.", "livesum")
DB_QUERY_DURATION = histogram(
    "db_query_duration_seconds", "Duration of SQL statements, by operation.", ["operation"], QUERY_BUCKETS)
DB_SLOW_QUERIES = counter(
    "db_slow_queries_total", "SQL statements at or above the slow-query threshold.", ["operation"])
CELERY_TASKS = counter(
    "celery_tasks_total", "Celery tasks finished, by outcome (succeeded, failed, retried).", ["task", "outcome"])
CELERY_TASK_DURATION = histogram(
    "celery_task_duration_seconds", "Run time of Celery tasks.", ["task"], SLOW_CALL_BUCKETS)
APP_ERRORS = counter("app_errors_total", "Unhandled exceptions, by exception type.", ["error_type"])
ALERT_NOTIFICATIONS = counter(
    "alert_notifications_total",
    "Error notifications, by channel and outcome (queued, deduplicated, held, dropped, sent, retried, failed).",
    ["channel", "outcome"])
ACTIVE_USERS_NAME = "active_users"  # a gauge, computed at scrape time (`observability.users`)


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
