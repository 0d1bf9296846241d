"""OpenTelemetry traces, exported over OTLP/HTTP (Jaeger v2 receives OTLP natively).

The Jaeger exporter package is gone upstream and no longer imports with the current SDK, and
OTLP/gRPC channels are not fork-safe, hence OTLP/HTTP. Instrumentation is wired at start-up (before
any fork: the tracers are proxies until a provider exists) and the provider with its exporter
thread is created per process after fork. Spans leave through a bounded batch queue on a background
thread, so an unreachable collector drops spans instead of slowing or failing requests.
"""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from observability.config import ObservabilityConfig


def build_sampler(name: str, argument: str) -> Sampler:
    """The sampler named as in `OTEL_TRACES_SAMPLER`."""
    ratio = float(argument) if argument else 1.0
    roots = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF, "traceidratio": TraceIdRatioBased(ratio)}
    if name in roots:
        return roots[name]
    if name.startswith("parentbased_") and name.removeprefix("parentbased_") in roots:
        return ParentBased(roots[name.removeprefix("parentbased_")])
    raise ValueError(f"unsupported OTEL_TRACES_SAMPLER {name!r}")


def _excluded_urls(paths: tuple[str, ...]) -> str:
    # The Flask instrumentation searches these regexes in the full URL: anchor them at the path end.
    return ",".join(f"{re.escape(path)}(\\?|$)" for path in paths)


def instrument_libraries(config: ObservabilityConfig, app: Any = None, engine: Any = None) -> None:
    """Wires the instrumentations; safe before fork because no provider exists yet."""
    if app is not None:
        FlaskInstrumentor().instrument_app(app, excluded_urls=_excluded_urls(config.access_log_excluded_paths))
    sqlalchemy = SQLAlchemyInstrumentor()
    if engine is not None and not sqlalchemy.is_instrumented_by_opentelemetry:
        # Instruments this engine and wraps create_engine: engines created later are traced too.
        sqlalchemy.instrument(engine=engine, enable_commenter=config.sql_commenter)
    for instrumentor in (RedisInstrumentor(), RequestsInstrumentor(), CeleryInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def start_provider(config: ObservabilityConfig, exporter: SpanExporter | None = None) -> TracerProvider:
    """Creates this process's provider and exporter thread; call once per process, after fork.

    A process has one provider: if one is already installed (by a test, or by an application that
    set up OpenTelemetry itself), it is kept and returned.
    """
    installed = trace.get_tracer_provider()
    if isinstance(installed, TracerProvider):
        return installed
    resource = Resource.create({
        "service.name": config.service_name,
        "service.version": config.service_version,
        "deployment.environment.name": config.environment,
    })
    provider = TracerProvider(resource=resource, sampler=build_sampler(config.traces_sampler,
                                                                       config.traces_sampler_arg))
    provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
