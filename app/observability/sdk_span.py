"""Attributes of the project's own spans written into the OpenTelemetry SDK's span directly.

The SDK checks and copies every attribute value it is given (`BoundedAttributes._set_items`, through
`isinstance` against its ABCs): about 5 µs for a server span's eleven on the bench's VM, for values
it then keeps as they were. The project's spans set strings and integers under names of their own,
so while the span's limits could change nothing (no maximum length of values, room for them all),
they go into the SDK's dict as they are. `observability.otlp_json` reads that dict back
(`attribute_dict`); tests/unit/observability/test_sdk_span.py checks that the SDK still has it.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk import trace as sdk_trace

# The SDK's recording span; its name is private, so a release without it takes the SDK's own path.
_SDK_SPAN: type | None = getattr(sdk_trace, "_Span", None)

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
