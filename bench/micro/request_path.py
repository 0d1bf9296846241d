"""Micro-benchmark (b): µs per request of request ids + access log + HTTP metrics (the project's
full instrumentation without tracing) over bare Flask, in-process, on the `trivial` route.

The access log writes to file descriptor 1, which the runner points at /dev/null (the write system
call is counted, a disk is not). Metrics are in multiprocess mode, as under gunicorn: the runner sets
PROMETHEUS_MULTIPROC_DIR before Python starts. Each concern alone is timed too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bench.apps import bare, project
from bench.micro.scale import Scale
from bench.micro.timing import time_interleaved
from bench.micro.wsgi_call import request_call
from bench.variants import VARIANTS
from observability.config import ObservabilityConfig

NO_TRACING = "request id + access log + metrics"


def _configs(base: ObservabilityConfig) -> dict[str, ObservabilityConfig]:
    off = replace(base, access_log_enabled=False, http_metrics_enabled=False, tracing_enabled=False)
    return {
        NO_TRACING: replace(off, access_log_enabled=True, http_metrics_enabled=True),
        "request id only (every concern off)": off,
        "request id + access log (logs-only)": VARIANTS["logs-only"].observability_config(base),
        "request id + metrics (metrics-only)": VARIANTS["metrics-only"].observability_config(base),
    }


def measure(scale: Scale) -> dict[str, Any]:
    cases = {"bare Flask": request_call(bare.create_app())}
    for name, config in _configs(ObservabilityConfig.from_env()).items():
        cases[name] = request_call(project.create_app(config))
    timings = time_interleaved(cases, scale.wsgi_calls, scale.repeats)
    bare_us = timings["bare Flask"].median_us
    return {
        "method": ("app.wsgi_app(environ, start_response) in a loop, GET /trivial, environ built once by "
                   f"werkzeug's EnvironBuilder, {scale.wsgi_calls} requests per timing, median of {scale.repeats}; "
                   "access log to /dev/null, metrics in multiprocess mode"),
        "requests": scale.wsgi_calls,
        "repeats": scale.repeats,
        "cases": {name: {**t.as_dict(), "over_bare_us": round(t.median_us - bare_us, 3)}
                  for name, t in timings.items()},
        "overhead_us": round(timings[NO_TRACING].median_us - bare_us, 3),
    }
