"""Micro-benchmark (c): µs per request that tracing adds over bare Flask, the project's tracing-only
configuration against OpenTelemetry's own Flask instrumentation with the SDK, both 100 % sampled.
The target compares costs over bare Flask, so the project's always-on request ids count against it;
the project with every concern off is timed too, to show how much of the difference they are.

Each side has its own TracerProvider and BatchSpanProcessor, and an exporter that encodes as its wire
exporter does and drops the bytes (`bench.micro.exporters`): the project's OTLP/JSON, each span
encoded as it ends, and OpenTelemetry's protobuf, each batch encoded on the export thread. The
project's provider comes from its own hook, `observability.tracing.start_provider(config, exporter)`
(with whatever the project adds there: its sampler, its redaction, its encoding processor);
`init_observability` then keeps it, one provider per process. OpenTelemetry's side is the documented
setup: `FlaskInstrumentor().instrument_app(app, tracer_provider=TracerProvider())` with a
BatchSpanProcessor. Each timing ends with a flush of its provider, timed with it: every span
created is also encoded within the timing, on whichever thread each side encodes it.

Both queues hold a whole timing's spans. A loop of WSGI calls never blocks, so CPython hands the
export thread the GIL only rarely (bench/README.md, "An in-process loop starves the export
thread"): with the SDK's 2,048-span queue, a longer timing would drop spans, and OpenTelemetry's
side would skip the encoding of every span it dropped. The spans per request reported are those
exported during the timings themselves, the evidence that none was.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from bench.apps import bare, project
from bench.micro.exporters import DroppedJson, dropped_protobuf, otel_peer
from bench.micro.scale import Scale
from bench.micro.timing import time_interleaved
from bench.micro.wsgi_call import request_call
from bench.variants import VARIANTS
from observability import tracing
from observability.config import ObservabilityConfig

BARE = "bare Flask"
IDS_ONLY = "project, every concern off (request id only)"
PROJECT = "project tracing-only"
OTEL = "OpenTelemetry FlaskInstrumentor + SDK"
# Read by both sides' batch processors as they are created (this runs in a process of its own).
_QUEUE_SIZE_VARIABLE = "OTEL_BSP_MAX_QUEUE_SIZE"


def measure(scale: Scale) -> dict[str, Any]:
    os.environ[_QUEUE_SIZE_VARIABLE] = str(max(scale.wsgi_calls, 2048))
    config = VARIANTS["tracing-only"].observability_config(ObservabilityConfig.from_env())
    project_exporter, otel_exporter = DroppedJson(), dropped_protobuf()
    project_provider = tracing.start_provider(config, project_exporter)
    otel_app, otel_provider = otel_peer(otel_exporter)
    ids_only = replace(config, tracing_enabled=False)
    cases = {
        BARE: request_call(bare.create_app()),
        IDS_ONLY: request_call(project.create_app(ids_only)),
        PROJECT: request_call(project.create_app(config)),
        OTEL: request_call(otel_app),
    }
    flush = {PROJECT: project_provider.force_flush, OTEL: otel_provider.force_flush}
    for finish in flush.values():
        finish()
    exported_before = {PROJECT: project_exporter.spans, OTEL: otel_exporter.spans}
    timings = time_interleaved(cases, scale.wsgi_calls, scale.repeats, finish=flush)
    timed_requests = scale.wsgi_calls * scale.repeats
    spans = {
        BARE: 0.0,
        IDS_ONLY: 0.0,
        PROJECT: (project_exporter.spans - exported_before[PROJECT]) / timed_requests,
        OTEL: (otel_exporter.spans - exported_before[OTEL]) / timed_requests,
    }
    project_provider.shutdown()
    otel_provider.shutdown()
    bare_us = timings[BARE].median_us
    project_over = timings[PROJECT].median_us - bare_us
    otel_over = timings[OTEL].median_us - bare_us
    return {
        "method": ("app.wsgi_app(environ, start_response) in a loop, GET /trivial, 100 % sampled, each side with "
                   "its own TracerProvider + BatchSpanProcessor (the project's from its start_provider hook) and an "
                   "exporter that encodes as for the wire and drops the bytes, flushed within each timing, "
                   "queues that hold a timing's spans (spans per request: exported during the timings), "
                   f"{scale.wsgi_calls} requests per timing, "
                   f"median of {scale.repeats}"),
        "requests": scale.wsgi_calls,
        "repeats": scale.repeats,
        "cases": {name: {**t.as_dict(), "over_bare_us": round(t.median_us - bare_us, 3),
                         "spans_per_request": spans[name]} for name, t in timings.items()},
        "project_over_bare_us": round(project_over, 3),
        "otel_over_bare_us": round(otel_over, 3),
        "ratio_to_otel": round(project_over / otel_over, 3) if otel_over > 0 else None,
        "project_over_request_ids_only_us": round(timings[PROJECT].median_us - timings[IDS_ONLY].median_us, 3),
    }

