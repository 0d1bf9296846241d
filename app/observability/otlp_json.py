"""Spans sent as OTLP/HTTP in its JSON encoding, built with orjson, each span encoded as it ends.

The protobuf exporter builds a message object per span, attribute and value in Python (about 114 µs
a span, bench/README.md); this builds plain dicts and lets orjson write them (a third of that). It
does so in the batch processor's `on_end`, on the thread that ends the span: a sampled request pays
for its own spans, a few dozen microseconds, instead of the export thread holding the GIL for a
whole batch while the requests that give it up at each system call wait up to the interpreter's
switch interval (5 ms) to get it back (micro-benchmark (e)). The export thread joins the spans' bytes
and sends them. The wire contract is OTLP's: `Content-Type: application/json` on `/v1/traces`, ids as
hex, 64-bit integers as decimal strings, enums as numbers, which Jaeger v2 and the Collector accept
like protobuf. `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf` goes back to the protobuf exporter.
"""

from __future__ import annotations

import base64
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext

if TYPE_CHECKING:
    from observability.redaction import Redactor

_logger = logging.getLogger(__name__)

# SpanFlags of OTLP: whether the parent is known to be remote, and whether it is.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


class EncodedSpan:
    """A finished span already written as OTLP/JSON, with what a batch groups it by and what the
    batch processor reads (its context)."""

    __slots__ = ("context", "instrumentation_scope", "json", "resource")

    def __init__(self, span: ReadableSpan, encoder: SpanEncoder | None = None) -> None:
        if type(span) is ReadableSpan:  # the SDK's own class, whose properties return these fields
            self.context, self.resource, self.instrumentation_scope = (
                span._context, span._resource, span._instrumentation_scope)
        else:
            self.context, self.resource, self.instrumentation_scope = (
                span.context, span.resource, span.instrumentation_scope)
        self.json = (encoder or _PLAIN).encode(span)


def encode_spans(spans: Sequence[ReadableSpan | EncodedSpan]) -> bytes:
    """An ExportTraceServiceRequest in OTLP/JSON: spans grouped by resource, then by scope.

    The spans' own JSON is joined as bytes, so a batch of spans encoded as they ended costs the
    export thread little more than a copy.
    """
    # Grouped by identity: a process has one resource and a few scopes, and Resource's own hash
    # serialises its attributes on every call.
    resources: dict[int, Resource] = {}
    grouped: dict[int, dict[int, tuple[InstrumentationScope | None, list[bytes]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        resources[id(resource)] = resource
        scopes = grouped.setdefault(id(resource), {})
        encoded = span.json if isinstance(span, EncodedSpan) else _PLAIN.encode(span)
        scopes.setdefault(id(scope), (scope, []))[1].append(encoded)
    # Written as pieces joined once: the spans' bytes (a few hundred KB a batch) are copied twice, not
    # once per level of nesting.
    pieces = [b'{"resourceSpans":[']
    for index, (key, scopes) in enumerate(grouped.items()):
        resource = resources[key]
        pieces += (b"," if index else b"", _opening({"resource": {"attributes": _attributes(resource.attributes)},
                                                    "schemaUrl": resource.schema_url, "scopeSpans": []}))
        for scope_index, (scope, encoded) in enumerate(scopes.values()):
            pieces += (b"," if scope_index else b"", _opening(_scope(scope)), b",".join(encoded), b"]}")
        pieces.append(b"]}")
    pieces.append(b"]}")
    return b"".join(pieces)


def _opening(head: dict[str, Any]) -> bytes:
    """`head` as JSON up to the opening bracket of its last field, an empty list the caller fills."""
    return orjson.dumps(head)[:-3] + b"["


def _scope(scope: InstrumentationScope | None) -> dict[str, Any]:
    if scope is None:
        return {"scope": {}, "spans": []}
    encoded_scope = {"name": scope.name, "version": scope.version or "", "attributes": _attributes(scope.attributes)}
    return {"scope": encoded_scope, "schemaUrl": scope.schema_url or "", "spans": []}


class SpanEncoder:
    """Writes finished spans as OTLP/JSON, with secrets replaced on the way when given a redactor.

    A span's fields are read from the SDK's own `ReadableSpan` without its properties and written
    into one bytes template. Redacting and encoding a string attribute is one step whose result is
    kept by key and value: most of them repeat span after span (methods, routes, hosts, user agents,
    statements), so such an attribute costs one lookup in one comprehension. Integers are kept per
    key apart from the strings (1, 1.0 and True are equal keys). A key whose values keep changing
    (request ids) stops being kept after `_VALUES_KEPT_PER_KEY` values; long values (stack traces)
    and values the redactor changed (their secret would stay in memory) are never kept.
    `redact_span` followed by the plain encoder writes the same bytes (tests/unit/observability/
    test_otlp_json.py).
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = redactor
        self._kept: dict[tuple[str, str], bytes] = {}  # (key, string value): the attribute written
        self._kept_integers: dict[str, Mapping[int, bytes]] = {}
        self._values_kept: dict[str, int] = {}  # per string key; _VARYING once its values keep changing
        self._names: dict[str, bytes] = {}  # span and event names (few, repeating), written

    def encode(self, span: ReadableSpan) -> bytes:
        """The span as OTLP/JSON's `Span` object."""
        if type(span) is ReadableSpan:  # the SDK's own class, whose properties return these fields
            context, parent, status, kind = span._context, span._parent, span._status, span._kind
            name, start, end = span._name, span._start_time, span._end_time
            attributes, events, links = span._attributes, span._events, span._links
            dropped = (getattr(attributes, "dropped", 0), getattr(events, "dropped", 0),
                       getattr(links, "dropped", 0))
            attributes, events, links = (getattr(attributes, "_dict", attributes), getattr(events, "_dq", events),
                                         getattr(links, "_dq", links))
        else:  # a subclass (a redacted copy) may compute them
            context, parent, status, kind = span.context, span.parent, span.status, span.kind
            name, start, end = span.name, span.start_time, span.end_time
            attributes, (events, links) = attribute_dict(span), events_and_links(span)
            dropped = (span.dropped_attributes, span.dropped_events, span.dropped_links)
        code, description = status.status_code._value_, status.description or ""
        tail = b""
        if parent is not None:
            tail += b',"parentSpanId":"%016x"' % parent.span_id
        if context.trace_state:
            tail += b',"traceState":' + orjson.dumps(context.trace_state.to_header())
        if events:
            tail += b',"events":[' + b",".join(map(self._event, events)) + b"]"
        if links:
            tail += b',"links":[' + b",".join(map(self._link, links)) + b"]"
        if any(dropped):
            tail += b"".join(b',"%s":%d' % pair for pair in zip(_DROPPED_COUNTS, dropped, strict=True) if pair[1])
        return _SPAN % (
            context.trace_id, context.span_id, self._name(name),
            kind._value_ + 1,  # the SDK counts from INTERNAL = 0, OTLP from UNSPECIFIED = 0
            start, end, self._attributes(attributes), _flags(parent),
            _UNSET_STATUS if code == 0 and not description else orjson.dumps(
                {"code": code, "message": self._redactor.text(description) if self._redactor else description}),
            tail)

    def _event(self, event: Event) -> bytes:
        return b'{"timeUnixNano":"%d","name":%s,"attributes":%s,"droppedAttributesCount":%d}' % (
            event.timestamp, self._name(event.name), self._attributes(attribute_dict(event)),
            event.dropped_attributes)

    def _link(self, link: Link) -> bytes:
        context = link.context
        return b'{"traceId":"%032x","spanId":"%016x","attributes":%s,"droppedAttributesCount":%d,"flags":%d}' % (
            context.trace_id, context.span_id, self._attributes(attribute_dict(link)), link.dropped_attributes,
            _flags(context))

    def _name(self, name: str) -> bytes:
        written = self._names.get(name)
        if written is None:
            clean = name if self._redactor is None else self._redactor.name(name)
            written = orjson.dumps(clean)
            if clean == name and len(self._names) < _NAMES_KEPT:  # a name that held a secret stays unkept
                self._names[name] = written
        return written

    def _attributes(self, attributes: Mapping[str, Any] | None) -> bytes:
        if not attributes:
            return b"[]"
        kept, missed = self._kept.get, self._missed
        try:
            written = [kept(item) or missed(item) for item in attributes.items()]
        except TypeError:  # an unhashable value (a list in a plain mapping): no lookup for it
            written = [missed(item) for item in attributes.items()]
        if b"" in written:  # left out: a value OTLP has no type for
            written = [attribute for attribute in written if attribute]
        return b"[" + b",".join(written) + b"]"

    def _missed(self, item: tuple[str, Any]) -> bytes:
        """An attribute not found among the kept strings: written, and kept if worth it; b"" if left out."""
        key, value = item
        kind = type(value)
        if kind is int:
            return self._kept_integers.get(key, _NOTHING_KEPT).get(value) or self._keeping_integer(key, value)
        clean = value if self._redactor is None else self._redactor.attribute(key, value)
        attribute = _attribute(key, clean)
        if attribute is None:
            return b""
        written = orjson.dumps(attribute)
        # A value that held a secret stays unkept; so does a long one, and one of a key whose values vary.
        if (kind is str and clean == value and len(value) <= _LONGEST_VALUE_KEPT
                and self._values_kept.get(key) != _VARYING):
            self._keep_string(item, written)
        return written

    def _keep_string(self, item: tuple[str, str], written: bytes) -> None:
        """Kept for the next span while its key has kept fewer than `_VALUES_KEPT_PER_KEY` values."""
        key = item[0]
        count = self._values_kept.get(key, 0 if len(self._values_kept) < _KEYS_KEPT else _VARYING)
        if count == _VARYING:
            return
        if count < _VALUES_KEPT_PER_KEY:
            self._kept[item] = written
            self._values_kept[key] = count + 1
        else:
            self._values_kept[key] = _VARYING

    def _keeping_integer(self, key: str, value: int) -> bytes:
        clean = value if self._redactor is None else self._redactor.attribute(key, value)
        written = orjson.dumps(_attribute(key, clean))
        if clean == value:
            values = self._kept_integers.get(key)
            if values is None and len(self._kept_integers) < _KEYS_KEPT:
                values = self._kept_integers[key] = {}
            if isinstance(values, dict):
                if len(values) < _VALUES_KEPT_PER_KEY:
                    values[value] = written
                else:  # varying values: no longer kept
                    self._kept_integers[key] = _NOTHING_KEPT
        return written


def attribute_dict(item: ReadableSpan | Event | Link) -> Mapping[str, Any] | None:
    """A finished span's, event's or link's attributes, read from the SDK's own dict where it has one.

    `attributes` hands out the SDK's `BoundedAttributes`, whose items are iterated through its
    Python `__iter__` and a `__getitem__` call per key; every exported span's attributes are iterated
    twice (redaction, encoding), and its plain dict, immutable once the span has ended, saves both
    (tests/unit/observability/test_otlp_json.py checks that the SDK still keeps one).
    """
    plain = getattr(getattr(item, "_attributes", None), "_dict", None)
    return plain if type(plain) is dict else item.attributes


def events_and_links(span: ReadableSpan) -> tuple[Sequence[Event], Sequence[Link]]:
    """A finished span's events and links, read from the SDK's own deques where it has them.

    `events` and `links` copy them into tuples through the SDK's `BoundedList`, whose `__iter__` and
    `__len__` are Python calls: about 11,000 instructions a span to find both empty, as most are
    (tests/unit/observability/test_otlp_json.py checks that the SDK still keeps the deques).
    """
    events = getattr(getattr(span, "_events", None), "_dq", None)
    links = getattr(getattr(span, "_links", None), "_dq", None)
    if type(events) is deque and type(links) is deque:
        return events, links
    return span.events, span.links


def _flags(parent: SpanContext | None) -> int:
    return _HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Attributes not worth keeping (a resource's, a scope's, a link's), as OTLP/JSON's `KeyValue`s."""
    if not attributes:
        return []
    return [attribute for key, value in attributes.items() if (attribute := _attribute(key, value)) is not None]


def _attribute(key: str, value: Any) -> dict[str, Any] | None:
    """One `KeyValue`; None, and said so, for a value OTLP has no type for."""
    kind = type(value)  # the two common types first, without the general dispatch
    if kind is str:
        return {"key": key, "value": {"stringValue": value}}
    if kind is int:
        return {"key": key, "value": {"intValue": str(value)}}
    try:
        return {"key": key, "value": _value(value)}
    except TypeError:
        _logger.exception("attribute %s left out of the export: %s", key, kind.__name__)
        return None


# Exact types: bool is an int to isinstance.
_SCALARS = {str: "stringValue", bool: "boolValue", float: "doubleValue"}


def _value(value: Any) -> dict[str, Any]:
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return {scalar: value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if value is None:
        return {}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": [{"key": str(k), "value": _value(v)} for k, v in value.items()]}}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    raise TypeError(f"unsupported attribute value {type(value).__name__}")


_PLAIN = SpanEncoder()  # for spans given to the exporter unencoded: no redaction, as for any exporter
# OTLP/JSON's `Span` with the fields every span has; the optional ones follow in the last %s.
_SPAN = (b'{"traceId":"%032x","spanId":"%016x","name":%s,"kind":%d,"startTimeUnixNano":"%d",'
         b'"endTimeUnixNano":"%d","attributes":%s,"flags":%d,"status":%s%s}')
_UNSET_STATUS = b'{"code":0,"message":""}'
_DROPPED_COUNTS = (b"droppedAttributesCount", b"droppedEventsCount", b"droppedLinksCount")
# Attribute names come from code (a few dozen). At most 128 x 128 values of 256 characters: about
# 10 MB in the worst case, a few hundred KB in the sample service.
_KEYS_KEPT = 128
_VALUES_KEPT_PER_KEY = 128
_LONGEST_VALUE_KEPT = 256
_VARYING = -1
_NAMES_KEPT = 128  # span and event names: routes and operations, a few dozen
_NOTHING_KEPT: Mapping[Any, bytes] = MappingProxyType({})


class OtlpJsonSpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter with the JSON encoding: its endpoint, headers, TLS, compression,
    timeout and retries are upstream's, read from the same `OTEL_EXPORTER_OTLP_*` variables."""

    def __init__(self, endpoint: str | None = None, headers: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(endpoint=endpoint, headers={**(headers or {}), "content-type": "application/json"},
                         **kwargs)

    def export(self, spans: Sequence[ReadableSpan | EncodedSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            body = encode_spans(spans)
        except Exception:
            _logger.exception("a batch of %d spans could not be encoded", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if self._post(body) else SpanExportResult.FAILURE

    def _post(self, body: bytes) -> bool:
        # `_client` sends, compresses and retries for the upstream exporter (1.45, pinned); the
        # encoding test sends through it, so an upgrade that moves it fails there first.
        return self._client.export(body).success


class EncodingSpanProcessor(BatchSpanProcessor):
    """The batch processor in front of `OtlpJsonSpanExporter`: each sampled span is redacted and
    encoded as it ends (`SpanEncoder`), and the batch holds its bytes instead of the span."""

    def __init__(self, exporter: OtlpJsonSpanExporter, encoder: SpanEncoder) -> None:
        super().__init__(exporter)
        self._encoder = encoder
        # The batch processor's own `on_end` checks again that the span is sampled, then queues it.
        self._enqueue = getattr(getattr(self, "_batch_processor", None), "emit", None) or super().on_end

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.context and span.context.trace_flags.sampled):
            return
        try:
            encoded = EncodedSpan(span, self._encoder)
        except Exception:  # a span is never worth a request: this one is left out, and said so
            _logger.exception("span %r left out of the export: it could not be encoded", span.name)
            return
        self._enqueue(encoded)  # type: ignore[arg-type]  # the processor reads only its context
