"""The bench's project variants are the switches they claim to be."""

from __future__ import annotations

from dataclasses import replace

from opentelemetry.trace import SpanKind

from bench.variants import VARIANTS
from observability.config import ObservabilityConfig
from observability.tracing import build_sampler


def test_full_unsampled_is_full_default_with_no_trace_sampled() -> None:
    base = ObservabilityConfig()
    unsampled = VARIANTS["full-unsampled"].observability_config(base)
    default = VARIANTS["full-default"].observability_config(base)
    # Every concern as in full-default: only the sampler differs.
    assert replace(unsampled, traces_sampler=default.traces_sampler,
                   traces_sampler_arg=default.traces_sampler_arg) == default
    sampler = build_sampler(unsampled.traces_sampler, unsampled.traces_sampler_arg)
    decisions = {sampler.should_sample(None, trace_id, "GET /trivial", SpanKind.SERVER,
                                       {"url.path": "/trivial"}).decision.is_sampled()
                 for trace_id in (1, 2**64, 2**127 - 1)}  # wrk's requests carry no traceparent
    assert decisions == {False}
