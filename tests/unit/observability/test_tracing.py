from __future__ import annotations

import socket
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from observability.config import ObservabilityConfig
from observability.sdk_span import SampledSpans
from observability.tracing import (
    NewTraceSampling,
    ProcessTracerProvider,
    SkipPaths,
    build_sampler,
    process_resource,
)
from tests.support.demo_app import build_demo_app


def test_samplers_are_built_from_the_standard_names() -> None:
    assert build_sampler("always_on", "") is ALWAYS_ON
    assert build_sampler("always_off", "") is ALWAYS_OFF
    assert isinstance(build_sampler("traceidratio", "0.25"), TraceIdRatioBased)
    sampler = build_sampler("parentbased_traceidratio", "0.1")
    assert isinstance(sampler, ParentBased)
    with pytest.raises(ValueError, match="unsupported"):
        build_sampler("jaeger_remote", "")


def _decision(sampler, kind, attributes, parent=None):
    return sampler.should_sample(parent, 0x1234, "span", kind, attributes).decision


@pytest.mark.parametrize("attributes", [
    {"http.target": "/healthz"}, {"http.target": "/healthz?verbose=1"}, {"url.path": "/readyz"},
])
def test_probe_server_spans_are_dropped_even_under_a_sampled_parent(attributes) -> None:
    sampler = build_sampler("parentbased_always_on", "", ("/healthz", "/readyz"))
    assert isinstance(sampler, SkipPaths)
    sampled_parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(
        0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    assert _decision(sampler, SpanKind.SERVER, attributes) is Decision.DROP
    assert _decision(sampler, SpanKind.SERVER, attributes, sampled_parent) is Decision.DROP


@pytest.mark.parametrize(("kind", "attributes"), [
    (SpanKind.SERVER, {"http.target": "/healthzz"}),
    (SpanKind.SERVER, {"url.path": "/items/1", "http.target": "/healthz"}),
    (SpanKind.SERVER, {}),
    (SpanKind.CLIENT, {"http.target": "/healthz"}),
    (SpanKind.INTERNAL, None),
])
def test_other_spans_are_left_to_the_configured_sampler(kind, attributes) -> None:
    sampler = build_sampler("always_on", "", ("/healthz",))
    assert _decision(sampler, kind, attributes) is Decision.RECORD_AND_SAMPLE
    assert _decision(build_sampler("always_off", "", ("/healthz",)), kind, attributes) is Decision.DROP


@pytest.mark.parametrize(("name", "argument"), [
    ("parentbased_traceidratio", "0.1"), ("traceidratio", "0.5"), ("parentbased_traceidratio", "0"),
    ("parentbased_always_off", ""), ("always_off", ""), ("parentbased_always_on", ""), ("traceidratio", "1"),
])
def test_a_new_trace_is_decided_as_the_sdks_sampler_decides_it(name, argument) -> None:
    skipped = ("/healthz",)
    sampler = build_sampler(name, argument, skipped)
    ids = RandomIdGenerator()
    new_traces = NewTraceSampling(name, argument, skipped, ids)
    limit, bound = TraceIdRatioBased.TRACE_ID_LIMIT, new_traces._bound
    edges = [bound + step for step in (-1, 0) if 0 < bound + step <= limit]  # either side of the ratio's bound
    verdicts = set()
    for trace_id in [*(ids.generate_trace_id() for _ in range(2000)), *edges, 2**127 | 1]:
        for path in ("/items/1", "/healthz", "/healthz/more"):
            result = sampler.should_sample(Context(), trace_id, "GET", SpanKind.SERVER, {"url.path": path})
            assert new_traces.sampled(trace_id, path) is result.decision.is_sampled(), (hex(trace_id), path)
            verdicts.add(result.decision.is_sampled())
    assert verdicts == ({False} if name.endswith("always_off") or argument == "0" else {True, False})


def test_the_provider_decides_new_traces_and_starts_sampled_spans_itself_unless_the_sdk_is_disabled(
        monkeypatch) -> None:
    def provider(sampler: str, argument: str = "") -> ProcessTracerProvider:
        config = ObservabilityConfig(traces_sampler=sampler, traces_sampler_arg=argument)
        return ProcessTracerProvider(config, process_resource(config))

    ratio = provider("parentbased_traceidratio", "0.1")
    assert isinstance(ratio.new_traces, NewTraceSampling) and ratio.new_traces.ids is ratio.id_generator
    spans = ratio.sampled_spans("scope")
    assert isinstance(spans, SampledSpans) and spans.follows_sampled_parent
    assert ratio.sampled_spans("scope") is spans  # made once per tracer
    for sampler, follows in [("parentbased_always_off", True), ("always_on", True), ("traceidratio", False),
                             ("always_off", False)]:
        assert provider(sampler, "0.5").sampled_spans("scope").follows_sampled_parent is follows, sampler
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    disabled = provider("parentbased_traceidratio", "0.1")
    assert disabled.new_traces is None and disabled.sampled_spans("scope") is None


@pytest.fixture
def traced_app(make_config, spans):
    app, _ = build_demo_app(make_config(tracing_enabled=True))
    return app


def test_request_span_carries_the_request_id_and_logs_carry_the_trace_id(traced_app, spans, log_lines) -> None:
    response = traced_app.test_client().get("/items/3", headers={"X-Request-ID": "span-req-0001"})
    assert response.status_code == 200
    (server,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET /items/<int:item_id>"
    assert server.attributes["request.id"] == "span-req-0001"
    (access,) = log_lines.events("api_access")
    assert access["trace_id"] == format(server.context.trace_id, "032x")
    assert access["span_id"] == format(server.context.span_id, "016x")


def test_probes_are_not_traced(traced_app, spans) -> None:
    traced_app.test_client().get("/healthz")
    traced_app.test_client().get("/healthz?verbose=1")
    assert spans.get_finished_spans() == ()


def test_an_inbound_traceparent_joins_the_callers_trace(traced_app, spans) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced_app.test_client().get("/ok", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    (server,) = spans.get_finished_spans()
    assert format(server.context.trace_id, "032x") == trace_id


_UNREACHABLE_COLLECTOR = """
import json, logging, os, socket, sys, time
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from observability import ObservabilityConfig
from observability.tracing import start_provider
records = {}
class Count(logging.Handler):
    def emit(self, record):
        key = f"{record.name} {record.levelname}"
        records[key] = records.get(key, 0) + 1
logging.getLogger().addHandler(Count())
exports = []
class Exporter(OTLPSpanExporter):
    def export(self, spans):
        exports.append(len(spans))
        return super().export(spans)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
provider = start_provider(ObservabilityConfig(), Exporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=1))
tracer = provider.get_tracer("test")
# Until that many batches have failed (not for a fixed time: a loaded machine exports fewer).
deadline = time.monotonic() + 30
while len(exports) < int(sys.argv[1]) and time.monotonic() < deadline:
    with tracer.start_as_current_span("work"):
        time.sleep(0.01)
print(json.dumps({"exports": len(exports), "records": records}))
"""


def test_an_unreachable_collector_is_logged_once_per_interval_not_per_batch() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    app = Path(__file__).resolve().parents[3] / "app"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(app), "OTEL_BSP_SCHEDULE_DELAY": "100"}
    done = subprocess.run([sys.executable, "-c", _UNREACHABLE_COLLECTOR, "4"], env=env, capture_output=True,
                          text=True, timeout=90, check=True)
    measured = json.loads(done.stdout)
    assert measured["exports"] >= 4, measured  # several batches failed ...
    records = measured["records"]
    assert records and all(count == 1 for count in records.values()), measured  # ... each message said once


def test_the_resource_names_the_host_and_a_new_instance_per_process() -> None:
    """Replicas are told apart by host.name (the container's name, as in the log records), each process
    by its own service.instance.id."""
    config = ObservabilityConfig(service_name="svc", service_namespace="ns")
    first, second = process_resource(config), process_resource(config)
    assert first.attributes["host.name"] == socket.gethostname()
    assert first.attributes["service.name"] == "svc" and first.attributes["service.namespace"] == "ns"
    ids = {first.attributes["service.instance.id"], second.attributes["service.instance.id"]}
    assert len(ids) == 2 and all(uuid.UUID(str(i)).version == 4 for i in ids)
