"""Request count, duration and in-flight gauge per route template, on the web process's request hooks."""

from __future__ import annotations

import time
from typing import Any

from observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS, HTTP_REQUESTS_IN_FLIGHT, LabelCache

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
