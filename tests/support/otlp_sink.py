"""The sandbox's OTLP/HTTP receiver, keeping what it receives, with what the tests read from it: the
spans decoded from what the exporters really send, OTLP/JSON or protobuf."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sandbox.otlp_receiver import OtlpReceiver


@dataclass
class ReceivedSpan:
    service: str
    namespace: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def parse_export(body: bytes) -> ExportTraceServiceRequest:
    """One export, whichever OTLP/HTTP encoding it came in (a JSON one starts with a brace)."""
    if not body.lstrip().startswith(b"{"):
        return ExportTraceServiceRequest.FromString(body)
    document = json.loads(body)
    # OTLP/JSON writes ids as hex where protobuf's JSON mapping of bytes expects base64.
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for holder in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in holder:
                            holder[key] = base64.b64encode(bytes.fromhex(holder[key])).decode("ascii")
    return json_format.ParseDict(document, ExportTraceServiceRequest())


def _received(body: bytes) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in parse_export(body).resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            spans.extend(ReceivedSpan(
                service=resource.get("service.name", ""), namespace=resource.get("service.namespace", ""),
                name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(), attributes={a.key: _value(a.value) for a in span.attributes},
            ) for span in scope_spans.spans)
    return spans


class OtlpSink(OtlpReceiver):
    """Every export kept (``bodies()``: a secret anywhere in a span is in these), decoded on demand."""

    def __init__(self) -> None:
        super().__init__(keep=True)

    def spans(self) -> list[ReceivedSpan]:
        return [span for body in self.bodies() for span in _received(body)]

    def proto_spans(self) -> list[Any]:
        """Every span received, as the protobuf messages (kind, events and status included)."""
        requests = [parse_export(body) for body in self.bodies()]
        return [span for request in requests for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans for span in scope_spans.spans]

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans() if s.trace_id == trace_id]

    def wait_for(self, trace_id: str, names: set[str], timeout: float = 20.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.trace(trace_id)
            if names <= {s.name for s in spans}:
                return spans
            time.sleep(0.1)
        got = sorted({s.name for s in self.trace(trace_id)})
        raise AssertionError(f"trace {trace_id}: expected spans {sorted(names)}, got {got}")
