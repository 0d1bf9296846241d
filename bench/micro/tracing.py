"""Micro-benchmark (c): µs per request that tracing adds over bare Flask, the project's tracing-only
configuration against OpenTelemetry's own Flask instrumentation with the SDK, both 100 % sampled.

Both share one TracerProvider whose BatchSpanProcessor hands spans to an exporter that discards
them, so only the instrumentation differs. The provider is installed through the project's own hook,
`observability.tracing.start_provider(config, exporter)`; `init_observability` then keeps it (one
provider per process), and `FlaskInstrumentor().instrument_app` on a bare app picks it up as well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bench.apps import bare, project
from bench.micro.scale import Scale
from bench.micro.timing import time_interleaved
from bench.micro.wsgi_call import request_call
from bench.variants import VARIANTS
from observability import tracing
from observability.config import ObservabilityConfig

BARE = "bare Flask"
PROJECT = "project tracing-only"
OTEL = "OpenTelemetry FlaskInstrumentor + SDK"
_SPAN_CHECK_REQUESTS = 20


class DiscardingExporter(SpanExporter):
    """Counts and drops spans: the export thread's work without a collector's."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return


def measure(scale: Scale) -> dict[str, Any]:
    config = VARIANTS["tracing-only"].observability_config(ObservabilityConfig.from_env())
    exporter = DiscardingExporter()
    provider = tracing.start_provider(config, exporter)
    otel_app = bare.create_app()
    FlaskInstrumentor().instrument_app(otel_app)
    cases = {
        BARE: request_call(bare.create_app()),
        PROJECT: request_call(project.create_app(config)),
        OTEL: request_call(otel_app),
    }
    spans = {name: _spans_per_request(call, provider, exporter) for name, call in cases.items()}
    timings = time_interleaved(cases, scale.wsgi_calls, scale.repeats)
    provider.shutdown()
    bare_us = timings[BARE].median_us
    project_over = timings[PROJECT].median_us - bare_us
    otel_over = timings[OTEL].median_us - bare_us
    return {
        "method": ("app.wsgi_app(environ, start_response) in a loop, GET /trivial, 100 % sampled, one "
                   "TracerProvider + BatchSpanProcessor + discarding exporter shared by both, "
                   f"{scale.wsgi_calls} requests per timing, median of {scale.repeats}"),
        "requests": scale.wsgi_calls,
        "repeats": scale.repeats,
        "cases": {name: {**t.as_dict(), "over_bare_us": round(t.median_us - bare_us, 3),
                         "spans_per_request": spans[name]} for name, t in timings.items()},
        "project_over_bare_us": round(project_over, 3),
        "otel_over_bare_us": round(otel_over, 3),
        "ratio_to_otel": round(project_over / otel_over, 3) if otel_over > 0 else None,
    }


def _spans_per_request(call: Callable[[], int], provider: TracerProvider, exporter: DiscardingExporter) -> float:
    """Evidence that a case really traces: spans exported per request over a few requests."""
    provider.force_flush()
    before = exporter.spans
    for _ in range(_SPAN_CHECK_REQUESTS):
        call()
    provider.force_flush()
    return (exporter.spans - before) / _SPAN_CHECK_REQUESTS
