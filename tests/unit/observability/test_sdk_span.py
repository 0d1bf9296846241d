"""Attributes written into the SDK's span directly end where the SDK's own `set_attributes` puts
them, and every case where the SDK would change something still goes through it."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from observability.sdk_span import set_plain_attributes

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
