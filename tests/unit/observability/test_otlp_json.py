"""The OTLP/JSON encoding against the protobuf exporter's encoder: the same spans give the same
ExportTraceServiceRequest; and the exporter really sends it, as JSON, through upstream's client."""

from __future__ import annotations

import json
from collections import deque

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_protobuf
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

from observability.config import ObservabilityConfig
from observability.otlp_json import (
    EncodedSpan,
    OtlpJsonSpanExporter,
    SpanEncoder,
    attribute_dict,
    encode_spans,
    events_and_links,
)
from observability.redaction import Redactor
from observability.tracing import build_exporter, instrument_libraries, redact_span
from sandbox.otlp_receiver import OtlpReceiver
from tests.support.otlp_sink import parse_export


def _spans() -> list[ReadableSpan]:
    """Spans with every field the encoders treat: kinds, remote and local parents, trace state, links,
    events, error status, dropped attributes, attribute types, two resources and two scopes."""
    memory = InMemorySpanExporter()
    spans: list[ReadableSpan] = []
    for service in ("api", "worker"):
        provider = TracerProvider(resource=Resource.create({"service.name": service, "host.name": "h1"}),
                                  span_limits=None)
        provider.add_span_processor(SimpleSpanProcessor(memory))
        remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                             trace_flags=TraceFlags(TraceFlags.SAMPLED), trace_state=TraceState([("vendor", "v1")]))
        server_tracer = provider.get_tracer("observability.server_spans", "1.0", schema_url="https://example/s")
        with server_tracer.start_as_current_span(
                "GET /items/<int:item_id>", set_span_in_context(NonRecordingSpan(remote)), SpanKind.SERVER,
                attributes={"http.request.method": "GET", "server.port": 8000, "ratio": 0.25, "cached": False,
                            "tags": ("a", "b"), "ports": (1, 2), "big": 2**62}) as server:
            server.add_event("retry", {"attempt": 2})
            with provider.get_tracer("sqlalchemy").start_as_current_span(
                    "SELECT", kind=SpanKind.CLIENT, links=[Link(remote, {"why": "batch"})]) as query:
                query.set_status(Status(StatusCode.ERROR, "division by zero"))
                query.record_exception(ZeroDivisionError("division by zero"))
        provider.get_tracer("celery").start_span("run/task", kind=SpanKind.CONSUMER).end()
        provider.get_tracer("celery").start_span("apply_async/task", kind=SpanKind.PRODUCER).end()
    spans.extend(memory.get_finished_spans())
    return spans


def _canonical(request) -> list:
    """Resources, scopes and spans in a stable order (grouping keeps insertion order in both)."""
    return sorted(json.dumps(json.loads(_to_json(resource_spans)), sort_keys=True)
                  for resource_spans in request.resource_spans)


def _to_json(message) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(message)


def test_the_json_encoding_carries_what_the_protobuf_encoding_does() -> None:
    spans = _spans()
    assert len(spans) == 8
    ours = parse_export(encode_spans(spans))
    theirs = encode_protobuf(spans)
    assert _canonical(ours) == _canonical(theirs)
    assert ours == theirs  # the same message, field by field and in the same order


def test_ids_and_64_bit_integers_are_written_as_otlp_json_asks() -> None:
    document = json.loads(encode_spans(_spans()))
    spans = [span for scope in document["resourceSpans"][0]["scopeSpans"] for span in scope["spans"]]
    (span,) = [span for span in spans if span["kind"] == 2]  # SERVER
    assert span["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736" and span["parentSpanId"] == "00f067aa0ba902b7"
    assert span["kind"] == 2 and span["traceState"] == "vendor=v1" and span["flags"] == 0x300
    assert isinstance(span["startTimeUnixNano"], str)
    values = {a["key"]: a["value"] for a in span["attributes"]}
    assert values["big"] == {"intValue": str(2**62)} and values["cached"] == {"boolValue": False}


def test_the_exporter_sends_json_to_the_traces_endpoint() -> None:
    receiver = OtlpReceiver(keep=True)
    try:
        exporter = OtlpJsonSpanExporter(endpoint=f"{receiver.url}/v1/traces", headers={"x-tenant": "t1"})
        assert exporter.export(_spans()) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert exporter.export(_spans()) is SpanExportResult.FAILURE  # after shutdown, nothing is sent
    finally:
        receiver.close()
    (body,) = receiver.bodies()
    assert body.startswith(b'{"resourceSpans":')
    assert len(parse_export(body).resource_spans) == 2


def test_an_unreachable_endpoint_is_a_failed_export_not_an_exception() -> None:
    from sandbox.net import free_port

    exporter = OtlpJsonSpanExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=1)
    assert exporter.export(_spans()) is SpanExportResult.FAILURE


def test_the_protocol_setting_chooses_the_encoding_and_refuses_others_before_any_fork() -> None:
    assert ObservabilityConfig().traces_protocol == "http/json"
    assert type(build_exporter("http/json")) is OtlpJsonSpanExporter
    assert type(build_exporter("http/protobuf")).__name__ == "OTLPSpanExporter"
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        build_exporter("grpc")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL 'grpc': one of http/json"):
        instrument_libraries(ObservabilityConfig(traces_protocol="grpc"))


def test_spans_encoded_as_they_ended_make_the_same_request() -> None:
    spans = _spans()
    assert encode_spans([EncodedSpan(span) for span in spans]) == encode_spans(spans)


SECRET = "S3CR3T-otlp-0123"
REDACTOR = Redactor(ObservabilityConfig().redact_keys, known_secrets=(f"admin-{SECRET}",))


def _secret_bearing_spans(request_ids: int = 1) -> list[ReadableSpan]:
    """Spans with a secret wherever one can hide: name, secret-named and URL attributes, free text,
    tuples, event names and attributes, link attributes, the status; and `request_ids` spans with
    distinct ids."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for number in range(request_ids):
        link = Link(SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True),
                    {"batch.token": SECRET, "note": f"api_key={SECRET}", "batch.size": 3})
        with tracer.start_as_current_span(f"GET /reset?token={SECRET}", kind=SpanKind.SERVER, links=[link], attributes={
                "http.request.method": "GET", "url.query": f"token={SECRET}&limit=2", "url.path": "/reset",
                "url.full": f"https://u:{SECRET}@example.test/x?api_key={SECRET}", "http.target": "/x?a=1",
                "user.password": SECRET, "session.token": 1234, "note": f"with admin-{SECRET} inside",
                "tags": ("plain", f"password={SECRET}"), "ports": [1, 2], "server.port": 8000, "ok": True,
                "request.id": f"{number:032x}"}) as span:
            span.add_event(f"retry password={SECRET}", {"exception.message": f"failed api_key={SECRET}"})
            span.set_status(Status(StatusCode.ERROR, f"denied secret={SECRET}"))
    return list(memory.get_finished_spans())


def test_spans_are_redacted_while_encoded_as_redact_span_then_encoding_would() -> None:
    encoder = SpanEncoder(REDACTOR)
    spans = _secret_bearing_spans(request_ids=300)  # more request ids than the encoder keeps for a key
    for span in [*spans, *spans]:  # the second time from what the encoder kept
        written = encoder.encode(span)
        assert written == SpanEncoder().encode(redact_span(span, REDACTOR))
        assert SECRET.encode() not in written
    assert SECRET.encode() in SpanEncoder().encode(spans[0])  # the plain encoder redacts nothing


def test_what_the_encoder_keeps_is_bounded_and_keyed_by_type() -> None:
    from observability.otlp_json import _VALUES_KEPT_PER_KEY, _VARYING

    encoder = SpanEncoder(REDACTOR)
    for span in _secret_bearing_spans(request_ids=300):
        encoder.encode(span)
    kept_keys = [key for key, _ in encoder._kept]
    # Distinct every time: kept up to the bound, then no longer.
    assert kept_keys.count("request.id") == _VALUES_KEPT_PER_KEY and encoder._values_kept["request.id"] == _VARYING
    assert kept_keys.count("http.request.method") == 1 and ("http.request.method", "GET") in encoder._kept
    assert "url.query" not in kept_keys and "user.password" not in kept_keys  # their values held a secret
    assert not any(SECRET in value for _, value in encoder._kept)
    assert not any(SECRET.encode() in written for written in [*encoder._kept.values(), *encoder._names.values()])
    assert "session.token" not in encoder._kept_integers  # a secret-named key: its value is redacted
    assert list(encoder._kept_integers["server.port"]) == [8000]
    assert "server.port" not in kept_keys  # strings and integers apart: 1, 1.0 and True are equal keys
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for value in ("1", 1, True, 1.0, True, 1):
        provider.get_tracer("test").start_span("s", attributes={"n": value}).end()
    values = [json.loads(encoder.encode(span))["attributes"][0]["value"] for span in memory.get_finished_spans()]
    assert values == [{"stringValue": "1"}, {"intValue": "1"}, {"boolValue": True}, {"doubleValue": 1.0},
                      {"boolValue": True}, {"intValue": "1"}]


def _server_spans(count: int) -> list[ReadableSpan]:
    """Server spans as a service ends them: repeating methods, routes, ports and statuses, a distinct
    request id each, and one key holding 1, True, 1.0 and False in turn (equal keys of a dict)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for number in range(count):
        route = ("/items", "/orders/<id>")[number % 2]
        tracer.start_span(f"GET {route}", kind=SpanKind.SERVER, attributes={
            "http.request.method": "GET", "http.route": route, "server.port": 8000,
            "request.id": f"{number:032x}", "http.response.status_code": (200, 404, 500)[number % 3],
            "retried": (1, True, 1.0, False)[number % 4]}).end()
    return list(memory.get_finished_spans())


def test_attributes_written_from_what_the_encoder_kept_are_what_upstream_encodes() -> None:
    from observability.otlp_json import _VARYING

    spans = _server_spans(400)  # past the bound of request ids: they become varying
    encoder = SpanEncoder(REDACTOR)
    first = [encoder.encode(span) for span in spans]
    assert encoder._values_kept["request.id"] == _VARYING
    assert [encoder.encode(span) for span in spans] == first  # the second time from what was kept
    assert parse_export(encode_spans([EncodedSpan(span, encoder) for span in spans])) == encode_protobuf(spans)


def test_attributes_are_read_from_the_sdks_own_dict_of_spans_and_events() -> None:
    # The SDK renaming its internals would silently cost each span two slow iterations: fail here instead.
    for span in _spans():
        for item in (span, *span.events):
            attributes = attribute_dict(item)
            assert type(attributes) is dict
            assert attributes == dict(item.attributes or {})
    server = next(span for span in _spans() if span.kind is SpanKind.SERVER)
    assert attribute_dict(server) is server._attributes._dict
    # A span that holds a plain mapping (the redacted copies) is read through `attributes`.
    copy = ReadableSpan(name="copy", attributes={"k": "v"})
    assert dict(attribute_dict(copy) or {}) == {"k": "v"}


def test_events_and_links_are_read_from_the_sdks_own_deques() -> None:
    spans = _spans()
    assert any(span.events for span in spans) and any(span.links for span in spans)
    for span in spans:
        events, links = events_and_links(span)
        assert type(events) is deque and type(links) is deque
        assert (tuple(events), tuple(links)) == (span.events, span.links)
    copy = ReadableSpan(name="copy", events=spans[0].events, links=spans[1].links)
    assert events_and_links(copy) == (copy.events, copy.links)


class KeptBodies(OtlpJsonSpanExporter):
    """The JSON exporter, keeping what it would post."""

    def __init__(self) -> None:
        super().__init__(endpoint="http://127.0.0.1:9/v1/traces")
        self.bodies: list[bytes] = []

    def _post(self, body: bytes) -> bool:
        self.bodies.append(body)
        return True


def _json_provider(exporter: KeptBodies, env: dict[str, str]) -> TracerProvider:
    """Call with the `installed_providers` fixture active: the provider is not made global."""
    from observability import tracing

    return tracing.start_provider(ObservabilityConfig.from_env({"OTEL_TRACES_SAMPLER": "always_on", **env}), exporter)


def test_the_provider_redacts_and_encodes_each_span_on_the_thread_that_ends_it(monkeypatch,
                                                                               installed_providers) -> None:
    import threading

    from observability import otlp_json

    encoding_threads: list[str] = []
    encode_one = otlp_json.SpanEncoder.encode
    monkeypatch.setattr(otlp_json.SpanEncoder, "encode", lambda self, span: encoding_threads.append(
        threading.current_thread().name) or encode_one(self, span))
    exporter = KeptBodies()
    provider = _json_provider(exporter, {"REDACT_KEYS": "pin"})
    try:
        with provider.get_tracer("test").start_as_current_span("s", attributes={"card_pin": "1234", "n": 1}):
            pass
        assert encoding_threads == [threading.current_thread().name]  # at the span's end, before any export
        provider.force_flush()
    finally:
        provider.shutdown()
    assert encoding_threads == [threading.current_thread().name]  # the export thread encoded nothing again
    (body,) = exporter.bodies
    (span,) = parse_export(body).resource_spans[0].scope_spans[0].spans
    assert {a.key: a.value.string_value or a.value.int_value for a in span.attributes} == {
        "card_pin": "[REDACTED]", "n": 1}


def test_the_processor_queues_into_the_sdks_batch_processor_directly() -> None:
    # The SDK renaming its internals would silently cost each span a second sampled check: fail here instead.
    from observability.otlp_json import EncodingSpanProcessor

    processor = EncodingSpanProcessor(KeptBodies(), SpanEncoder())
    try:
        assert processor._enqueue == processor._batch_processor.emit
    finally:
        processor.shutdown()


def test_a_span_that_cannot_be_encoded_is_left_out_and_logged_and_the_others_are_sent(installed_providers,
                                                                                        caplog) -> None:
    exporter = KeptBodies()
    provider = _json_provider(exporter, {})
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("broken", attributes={"path": "/caf\udce9"}):  # not UTF-8: a lone surrogate
            pass
        with tracer.start_as_current_span("fine"):
            pass
        provider.force_flush()
    finally:
        provider.shutdown()
    (body,) = exporter.bodies
    assert [span.name for span in parse_export(body).resource_spans[0].scope_spans[0].spans] == ["fine"]
    assert "span 'broken' left out of the export" in caplog.text
