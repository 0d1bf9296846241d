"""Attributes written into the SDK's span directly end where the SDK's own `set_attributes` puts
them, and every case where the SDK would change something still goes through it; spans started as
sampled are the ones the SDK's tracer makes, field by field."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider, _disable_tracer_configurator
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from observability import sdk_span
from observability.config import ObservabilityConfig
from observability.sdk_span import SampledSpans, set_plain_attributes
from observability.tracing import ProcessTracerProvider

_ATTRIBUTES = {"http.request.method": "GET", "server.port": 8000, "ratio": 0.5, "sampled": True,
               "url.path": "/" + "x" * 40}


def _tracer(limits: SpanLimits | None = None) -> tuple[object, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider.get_tracer(__name__), memory


def _both_ways(limits: SpanLimits | None = None, **start: object) -> tuple[object, object]:
    tracer, memory = _tracer(limits)
    for setter in (lambda span, attributes: span.set_attributes(attributes), set_plain_attributes):
        with tracer.start_as_current_span("op", **start) as span:
            setter(span, _ATTRIBUTES)
    sdk, plain = memory.get_finished_spans()
    return sdk, plain


def test_plain_attributes_go_into_the_sdks_dict_without_its_checks(monkeypatch) -> None:
    tracer, memory = _tracer()
    with tracer.start_as_current_span("op", attributes={"first": "kept"}) as span:
        # The SDK renaming its span or dict would silently bring the checks back: fail here instead.
        monkeypatch.setattr(span, "set_attributes", lambda attributes: pytest.fail("the SDK's path was taken"))
        set_plain_attributes(span, _ATTRIBUTES)
    (finished,) = memory.get_finished_spans()
    assert list(finished.attributes.items()) == [("first", "kept"), *_ATTRIBUTES.items()]
    assert finished.dropped_attributes == 0


def test_the_same_attributes_as_the_sdks_set_attributes_in_the_same_order() -> None:
    sdk, plain = _both_ways(attributes={"first": "kept"})
    assert list(plain.attributes.items()) == list(sdk.attributes.items())


@pytest.mark.parametrize("limits", [
    SpanLimits(max_attribute_length=8),  # the SDK truncates the path
    SpanLimits(max_span_attributes=3),  # the SDK drops the oldest and counts them
], ids=["value length", "attribute count"])
def test_limits_that_change_the_attributes_are_left_to_the_sdk(limits: SpanLimits) -> None:
    sdk, plain = _both_ways(limits, attributes={"first": "kept"})
    assert list(plain.attributes.items()) == list(sdk.attributes.items())
    assert plain.dropped_attributes == sdk.dropped_attributes
    assert plain.attributes != {"first": "kept", **_ATTRIBUTES}  # the limit really changed them


def test_an_ended_span_keeps_its_attributes_and_the_sdk_warns(caplog) -> None:
    tracer, memory = _tracer()
    span = tracer.start_span("op")
    span.end()
    with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
        set_plain_attributes(span, _ATTRIBUTES)
    assert dict(memory.get_finished_spans()[0].attributes) == {}
    assert "ended span" in caplog.text


def test_a_non_recording_span_takes_the_api_path() -> None:
    span = TracerProvider(sampler=ALWAYS_OFF).get_tracer(__name__).start_span("dropped")
    set_plain_attributes(span, _ATTRIBUTES)  # NonRecordingSpan.set_attributes: nothing, and no error
    assert not span.is_recording()


# SampledSpans: the SDK's span for a span known to be sampled, as the SDK's tracer makes it.

class _Recording(SpanProcessor):
    """What the provider's processors are handed: each span's start context, and the ended span."""

    def __init__(self) -> None:
        self.started: list[tuple[object, object]] = []
        self.ended: list[object] = []

    def on_start(self, span, parent_context=None) -> None:
        self.started.append((span, parent_context))

    def on_end(self, span) -> None:
        self.ended.append(span)


def _provider(sampler: str) -> tuple[ProcessTracerProvider, _Recording]:
    config = ObservabilityConfig(traces_sampler=sampler, traces_sampler_arg="0.5")
    provider = ProcessTracerProvider(config, Resource.create({"service.name": "sampled-spans"}))
    recording = _Recording()
    provider.add_span_processor(recording)
    return provider, recording


def _fields(span) -> dict[str, object]:
    """Everything a span carries into its processors and exporters, but its own id and times."""
    context = span.get_span_context()
    return {
        "type": type(span), "name": span.name, "kind": span.kind, "parent": span.parent,
        "trace_id": context.trace_id, "flags": context.trace_flags, "trace_state": context.trace_state,
        "remote": context.is_remote, "resource": span.resource.attributes, "attributes": dict(span.attributes),
        "events": span.events, "links": span.links, "status": (span.status.status_code, span.status.description),
        "scope": span.instrumentation_scope, "info": span.instrumentation_info, "sampler": span._sampler,
        "processor": span._span_processor, "limits": span._limits, "exceptions": (
            span._record_exception, span._set_status_on_exception), "dropped": (
            span.dropped_attributes, span.dropped_events, span.dropped_links),
        "recording": span.is_recording(),
    }


def _both_ways_ended(provider, recording, start_by_tracer, start_sampled) -> tuple[dict, dict]:
    results = []
    for start in (start_by_tracer, start_sampled):
        span = start()
        (started, parent_context), = recording.started[-1:]
        assert started is span
        fields = {**_fields(span), "on_start context": parent_context}
        span.end()
        assert recording.ended[-1].name == span.name  # the processors saw it end
        results.append(fields)
    return results[0], results[1]


@pytest.mark.parametrize("sampler", ["parentbased_always_on", "always_on", "parentbased_traceidratio"])
def test_a_sampled_root_span_is_the_one_the_sdks_tracer_makes(sampler: str) -> None:
    provider, recording = _provider(sampler)
    tracer, spans = provider.get_tracer("scope"), provider.sampled_spans("scope")
    trace_id = next(t for t in iter(provider.id_generator.generate_trace_id, 0)
                    if provider.new_traces.sampled(t, "/items"))  # one the ratio samples too
    empty = Context()
    handed = iter([trace_id])
    original = provider.id_generator.generate_trace_id
    provider.id_generator.generate_trace_id = lambda: next(handed)  # the tracer draws the same trace id
    try:
        by_tracer, sampled = _both_ways_ended(
            provider, recording, lambda: tracer.start_span("GET /items", empty, SpanKind.SERVER),
            lambda: spans.start_root("GET /items", SpanKind.SERVER, trace_id, empty))
    finally:
        provider.id_generator.generate_trace_id = original
    assert sampled == by_tracer
    assert sampled["recording"] and sampled["flags"].sampled and sampled["on_start context"] is empty


@pytest.mark.parametrize("sampler", ["parentbased_always_on", "parentbased_traceidratio", "parentbased_always_off",
                                     "always_on"])
@pytest.mark.parametrize("remote", [False, True])
def test_a_child_of_a_sampled_span_is_the_one_the_sdks_tracer_makes(sampler: str, remote: bool) -> None:
    provider, recording = _provider(sampler)
    tracer, spans = provider.get_tracer("scope"), provider.sampled_spans("scope")
    assert spans.follows_sampled_parent
    parent = SpanContext(0x5EED, 0xF00D, remote, TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID),
                         TraceState([("vendor", "value")]))
    with trace.use_span(NonRecordingSpan(parent)):
        by_tracer, sampled = _both_ways_ended(
            provider, recording, lambda: tracer.start_span("SELECT app", kind=SpanKind.CLIENT),
            lambda: spans.start_child("SELECT app", SpanKind.CLIENT, parent))
    assert sampled == by_tracer
    assert sampled["parent"] == parent and sampled["trace_state"] == parent.trace_state


def test_the_tracers_resource_and_configuration_are_read_at_each_start() -> None:
    provider, _ = _provider("parentbased_always_on")
    spans = provider.sampled_spans("scope")
    provider._update_resource(Resource({"process.pid": 4242}))  # what the SDK does in a forked child
    span = spans.start_root("GET", SpanKind.SERVER, 0xABC, Context())
    assert span.resource.attributes["process.pid"] == 4242
    provider._set_tracer_configurator(tracer_configurator=_disable_tracer_configurator)
    assert not spans.start_root("GET", SpanKind.SERVER, 0xABC, Context()).is_recording()


def test_the_sdks_own_path_is_kept_where_its_tracer_does_more(monkeypatch) -> None:
    provider, _ = _provider("parentbased_always_on")
    assert SampledSpans.for_tracer(provider.get_tracer("scope"), follows_sampled_parent=True) is not None
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")  # read as each tracer is made
    assert SampledSpans.for_tracer(provider.get_tracer("other"), follows_sampled_parent=True) is None
    monkeypatch.delenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED")
    assert SampledSpans.for_tracer(trace.NoOpTracer(), follows_sampled_parent=True) is None
    monkeypatch.setattr(sdk_span, "_SPAN_PARAMETERS", (*sdk_span._SPAN_PARAMETERS[:-1], "renamed"))
    assert SampledSpans.for_tracer(provider.get_tracer("scope"), follows_sampled_parent=True) is None
