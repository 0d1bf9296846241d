"""The project's own spans, made and filled by the OpenTelemetry SDK's span class with fewer steps.

Attributes: the SDK checks and copies every attribute value it is given (`BoundedAttributes._set_items`,
through `isinstance` against its ABCs): about 5 µs for a server span's eleven on the bench's VM, for
values it then keeps as they were. The project's spans set strings and integers under names of their
own, so while the span's limits could change nothing (no maximum length of values, room for them all),
they go into the SDK's dict as they are. `observability.otlp_json` reads that dict back
(`attribute_dict`).

Starting: where the project already knows that a span is sampled (a new trace its sampler decided,
a child of a sampled span under a sampler that follows the parent), `SampledSpans` makes the SDK's
span as the SDK's `Tracer.start_span` makes it, without that method's generic steps: the parent looked
up in the context, the sampler asked again, the flags and the internal metrics' hook worked out anew
(36,000 of the 99,000 instructions of an SDK span's start and end, bench/README.md).
tests/unit/observability/test_sdk_span.py checks both against the SDK's own path, field by field.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

try:
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
except ImportError:  # a release that moved it: every tracer takes the SDK's own path
    NoOpTracerMetrics = None

# The SDK's recording span; its name is private, so a release without it takes the SDK's own path.
_SDK_SPAN: type | None = getattr(sdk_trace, "_Span", None)
# Its constructor's leading parameters, as `SampledSpans` passes them (by position: fewer steps).
_SPAN_PARAMETERS = ("self", "name", "context", "parent", "sampler", "trace_config", "resource", "attributes",
                    "events", "links", "kind", "span_processor", "instrumentation_info", "record_exception",
                    "set_status_on_exception", "limits", "instrumentation_scope")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)

PlainValue = str | int | float | bool


def set_plain_attributes(span: trace.Span, attributes: Mapping[str, PlainValue]) -> None:
    """`span.set_attributes(attributes)` for non-empty string keys and values of those four types,
    which the SDK would keep unchanged. A key the span has already keeps its place in the dict
    (the SDK would move it last); the value is the new one either way."""
    if type(span) is _SDK_SPAN:
        bounded = span._attributes
        if bounded.max_value_len is None and (
                bounded.maxlen is None or len(bounded._dict) + len(attributes) <= bounded.maxlen):
            with span._lock:  # the lock the SDK's own set_attributes takes
                if span._end_time is None:  # an ended span keeps its attributes
                    bounded._dict.update(attributes)
                    return
    span.set_attributes(attributes)  # anything else, and an ended span's warning, as the SDK does


class SampledSpans:
    """Starts the SDK's recording spans of one tracer for spans already known to be sampled."""

    def __init__(self, tracer: sdk_trace.Tracer, *, follows_sampled_parent: bool) -> None:
        # Whether the tracer's sampler samples every child of a sampled span (`start_child`'s premise).
        self.follows_sampled_parent = follows_sampled_parent
        self._tracer = tracer  # its resource and configuration can change (after a fork): read at each start
        # What `Tracer.start_span` gives every span of this tracer and cannot change, in the constructor's order.
        self._sampler = tracer.sampler
        self._processor_to_scope = (tracer.span_processor, tracer.instrumentation_info, True, True,
                                    tracer._span_limits, tracer._instrumentation_scope)
        self._generate_span_id = tracer.id_generator.generate_span_id
        self._random_trace_ids = tracer.id_generator.is_trace_id_random()

    @staticmethod
    def for_tracer(tracer: trace.Tracer, *, follows_sampled_parent: bool) -> SampledSpans | None:
        """None where the tracer's `start_span` does more than a sampled span needs (its internal
        metrics are on) or this SDK's span class is not the one this was written for."""
        if (_SDK_SPAN is None or NoOpTracerMetrics is None or type(tracer) is not sdk_trace.Tracer
                or tuple(inspect.signature(_SDK_SPAN.__init__).parameters)[:len(_SPAN_PARAMETERS)] != _SPAN_PARAMETERS
                or not isinstance(getattr(tracer, "_tracer_metrics", None), NoOpTracerMetrics)):
            return None
        return SampledSpans(tracer, follows_sampled_parent=follows_sampled_parent)

    def start_root(self, name: str, kind: SpanKind, trace_id: int, context: Context | None) -> trace.Span:
        """A span that starts trace `trace_id` (drawn by this tracer's id generator, and sampled);
        `context` is what `start_span` would be given (its processors see it)."""
        flags = _SAMPLED_RANDOM if self._random_trace_ids else _SAMPLED
        return self._start(name, kind, SpanContext(trace_id, self._generate_span_id(), False, flags), None, context)

    def start_child(self, name: str, kind: SpanKind, parent: SpanContext) -> trace.Span:
        """A span under `parent`, the current span's context (valid and sampled), where
        `follows_sampled_parent`; with the parent's trace state, as a parent-based or always-on
        sampler returns it."""
        flags = _SAMPLED_RANDOM if parent.trace_flags.random_trace_id else _SAMPLED
        span_context = SpanContext(parent.trace_id, self._generate_span_id(), False, flags, parent.trace_state)
        return self._start(name, kind, span_context, parent, None)  # `start_span` given no context

    def _start(self, name: str, kind: SpanKind, span_context: SpanContext, parent: SpanContext | None,
               context: Context | None) -> trace.Span:
        tracer = self._tracer
        if not tracer._tracer_config.is_enabled:  # what a disabled tracer makes of any span
            return tracer.start_span(name, context, kind)
        span = _SDK_SPAN(name, span_context, parent, self._sampler, None, tracer.resource, None, None, (), kind,
                         *self._processor_to_scope)
        span.start(None, context)
        return span


class ProvidersSampledSpans:
    """The installed provider's `SampledSpans` for one tracer scope, asked again only when another
    provider is installed (it is created after fork); None for a provider other than the process's own."""

    def __init__(self, scope: str) -> None:
        self._scope = scope
        self._known: tuple[object, SampledSpans | None] = (None, None)

    def of(self, provider: object) -> SampledSpans | None:
        known, spans = self._known
        if provider is not known:
            sampled_spans = getattr(provider, "sampled_spans", None)
            spans = sampled_spans(self._scope) if sampled_spans is not None else None
            self._known = (provider, spans)
        return spans
