"""OpenTelemetry traces, exported over OTLP/HTTP (Jaeger v2 receives OTLP natively).

The Jaeger exporter package is gone upstream and no longer imports with the current SDK, and
OTLP/gRPC channels are not fork-safe, hence OTLP/HTTP. Instrumentation is wired at start-up (before
any fork: the tracers are proxies until a provider exists) and the provider with its exporter
thread is created per process after fork. Spans leave through a bounded batch queue on a background
thread, so an unreachable collector drops spans instead of slowing or failing requests.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Status, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from observability.config import ObservabilityConfig
from observability.degraded import throttle_logger
from observability.otlp_json import (
    EncodingSpanProcessor,
    OtlpJsonSpanExporter,
    SpanEncoder,
    attribute_dict,
    events_and_links,
)
from observability.redaction import Redactor
from observability.sdk_span import SampledSpans
from observability.sql_spans import SqlSpans

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from observability.server_spans import ServerSpans

# While the collector is down these log several records per failed batch, every batch (measured: 42
# a minute per process): one per message per DEGRADED_WARNING_INTERVAL_SECONDS says as much. The
# JSON encoding's records (a span it cannot write) are held to the same rate: one per span would not be.
_EXPORT_FAILURE_LOGGERS = (OTLPSpanExporter.__module__, "opentelemetry.sdk._shared_internal",
                           OtlpJsonSpanExporter.__module__)


def build_sampler(name: str, argument: str, skipped_paths: tuple[str, ...] = ()) -> Sampler:
    """The sampler named as in `OTEL_TRACES_SAMPLER`; requests to `skipped_paths` are never sampled."""
    roots = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF, "traceidratio": TraceIdRatioBased(_ratio(argument))}
    if name in roots:
        sampler = roots[name]
    elif name.startswith("parentbased_") and name.removeprefix("parentbased_") in roots:
        sampler = ParentBased(roots[name.removeprefix("parentbased_")])
    else:
        raise ValueError(f"unsupported OTEL_TRACES_SAMPLER {name!r}")
    return SkipPaths(frozenset(skipped_paths), sampler) if skipped_paths else sampler


def _ratio(argument: str) -> float:
    return float(argument) if argument else 1.0


class SkipPaths(Sampler):
    """Drops the server spans of some paths (the probes), whatever their parent decided; asks
    `delegate` about every other span.

    The Flask instrumentation's own `excluded_urls` does the same by searching the full URL three
    times per request, which measured about 4 µs per request; this is one dictionary lookup.
    """

    def __init__(self, paths: frozenset[str], delegate: Sampler) -> None:
        self._paths = paths
        self._delegate = delegate

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,  # noqa: PLR0917 - the Sampler API
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        if kind is SpanKind.SERVER and attributes and _request_path(attributes) in self._paths:
            parent = trace.get_current_span(parent_context).get_span_context()
            return SamplingResult(Decision.DROP, trace_state=parent.trace_state if parent.is_valid else None)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"SkipPaths{{{','.join(sorted(self._paths))}}}/{self._delegate.get_description()}"


_TRACE_ID_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT


class NewTraceSampling:
    """The process's sampler asked about a server span that starts a trace, without the SDK.

    `build_sampler`'s samplers decide such a span by its path (`SkipPaths`) and its trace id alone
    (`TraceIdRatioBased`'s rule; always on and always off are its two extremes), so a request that
    carries no trace context is decided before any span is built: one that is not sampled gets the
    non-recording span the SDK would have made, with none of the SDK's work, and one that is gets the
    SDK's span from `SampledSpans`, on the trace id drawn here (`server_spans`). Requests that carry
    a trace context are the SDK's to decide.
    """

    def __init__(self, name: str, argument: str, skipped_paths: tuple[str, ...], ids: IdGenerator) -> None:
        root = name.removeprefix("parentbased_")
        bounds = {"always_on": _TRACE_ID_LIMIT + 1, "always_off": 0,
                  "traceidratio": TraceIdRatioBased.get_bound_for_rate(_ratio(argument))}
        if root not in bounds:
            raise ValueError(f"unsupported OTEL_TRACES_SAMPLER {name!r}")
        self._bound = bounds[root]
        self._skipped = frozenset(skipped_paths)
        self.ids = ids
        # What the SDK adds to a root span's flags (W3C Trace Context level 2): its ids are random.
        self.flags = TraceFlags(TraceFlags.RANDOM_TRACE_ID if ids.is_trace_id_random() else TraceFlags.DEFAULT)

    def sampled(self, trace_id: int, path: str) -> bool:
        return trace_id & _TRACE_ID_LIMIT < self._bound and path not in self._skipped


class ProcessTracerProvider(TracerProvider):
    """The SDK's provider, with the `NewTraceSampling` of its sampler for the server spans to use and
    the `SampledSpans` of each of the project's tracers (both None where the SDK is disabled)."""

    def __init__(self, config: ObservabilityConfig, resource: Resource) -> None:
        skipped = config.access_log_excluded_paths
        super().__init__(resource=resource, id_generator=RandomIdGenerator(),
                         sampler=build_sampler(config.traces_sampler, config.traces_sampler_arg, skipped))
        self.new_traces = None if self._disabled else NewTraceSampling(
            config.traces_sampler, config.traces_sampler_arg, skipped, self.id_generator)
        # The paths its sampler drops the server spans of: of a server span's attributes, the one it reads.
        self.skipped_paths = frozenset(skipped)
        # `SkipPaths` drops server spans only; the child of a sampled span is sampled by the rest.
        self._follows_sampled_parent = config.traces_sampler.startswith("parentbased_") or (
            config.traces_sampler == "always_on")
        self._sampled_spans: dict[str, SampledSpans | None] = {}

    def sampled_spans(self, scope: str) -> SampledSpans | None:
        """What starts the spans of tracer `scope` that are known to be sampled (`observability.sdk_span`)."""
        if scope not in self._sampled_spans:  # a disabled SDK's tracer is a no-op one: None
            self._sampled_spans[scope] = SampledSpans.for_tracer(
                self.get_tracer(scope), follows_sampled_parent=self._follows_sampled_parent)
        return self._sampled_spans[scope]


def _request_path(attributes: Attributes) -> object:
    # `url.path` in the stable HTTP conventions, `http.target` (path and query) in the old ones.
    path = attributes.get("url.path")
    if path is None:
        target = attributes.get("http.target")
        path = target.partition("?")[0] if isinstance(target, str) else None
    return path


SPAN_PATHS = ("lean", "upstream")  # the project's own spans, or the upstream instrumentation's
TRACE_PROTOCOLS = ("http/json", "http/protobuf")


def server_spans(config: ObservabilityConfig) -> ServerSpans | None:
    """The lean server-span path, or None where `TRACE_SERVER_SPANS=upstream` asks for Flask's own
    instrumentation (which `instrument_libraries` then wires)."""
    _refuse_unsupported("TRACE_SERVER_SPANS", config.server_spans, SPAN_PATHS)
    if config.server_spans == "upstream":
        return None
    from observability.server_spans import ServerSpans  # noqa: PLC0415 - imports Flask, which the worker never needs

    return ServerSpans(sql_commenter=config.sql_commenter, flask_version=importlib.metadata.version("flask"))


def _refuse_unsupported(variable: str, value: str, supported: tuple[str, ...]) -> None:
    if value not in supported:
        raise ValueError(f"unsupported {variable} {value!r}: one of {', '.join(supported)}")


def use_stable_http_conventions() -> None:
    """The stable HTTP attribute names (`url.path`, `http.request.method`, ...) from every HTTP
    instrumentation, as the lean path writes them; the instrumentations read this once, when the
    first of them is wired. A value set by the operator is kept."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")


def instrument_libraries(config: ObservabilityConfig, app: Any = None, engine: Engine | None = None) -> None:
    """Wires the instrumentations, Flask's own only when `app` is given; safe before fork because no
    provider exists yet. An unsupported export protocol or path is refused here, before any fork."""
    _refuse_unsupported("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", config.traces_protocol, TRACE_PROTOCOLS)
    _refuse_unsupported("TRACE_SQL_SPANS", config.sql_spans, SPAN_PATHS)
    use_stable_http_conventions()
    if app is not None:
        # Imported here: it imports Flask, which the Celery worker never needs.
        from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: PLC0415

        # Probes are left out by the sampler (SkipPaths), not by the instrumentation's excluded_urls.
        FlaskInstrumentor().instrument_app(app)
    if engine is not None:
        _instrument_engine(config, engine)
    for instrumentor in (RedisInstrumentor(), RequestsInstrumentor(), CeleryInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def _instrument_engine(config: ObservabilityConfig, engine: Engine) -> None:
    if config.sql_spans == "lean":
        parent_decides = config.traces_sampler.startswith("parentbased_")
        SqlSpans(engine, sql_commenter=config.sql_commenter, parent_decides=parent_decides).trace_engine()
        return
    sqlalchemy = SQLAlchemyInstrumentor()
    if not sqlalchemy.is_instrumented_by_opentelemetry:
        # Instruments this engine and wraps create_engine: engines created later are traced too.
        sqlalchemy.instrument(engine=engine, enable_commenter=config.sql_commenter)


def process_resource(config: ObservabilityConfig) -> Resource:
    """The resource of this process's spans: the service, and which of its copies sent them.

    `host.name` is the machine's (a container's) name, as the log records' `service.node.name` has it,
    so that a replica's traces and records can be matched; `service.instance.id` is new for every
    process (a gunicorn worker, a Celery worker), as the semantic conventions ask of it: unique among
    the copies of one service, whichever replica or worker they are.
    """
    return Resource.create({
        "service.name": config.service_name,
        "service.namespace": config.service_namespace,
        "service.version": config.service_version,
        "deployment.environment.name": config.environment,
        "host.name": socket.gethostname(),
        "service.instance.id": str(uuid.uuid4()),
    })


def start_provider(config: ObservabilityConfig, exporter: SpanExporter | None = None) -> TracerProvider:
    """Creates this process's provider and exporter thread; call once per process, after fork.

    A process has one provider: if one is already installed (by a test, or by an application that
    set up OpenTelemetry itself), it is kept and returned.
    """
    installed = trace.get_tracer_provider()
    if isinstance(installed, TracerProvider):
        return installed
    provider = ProcessTracerProvider(config, process_resource(config))
    for logger_name in _EXPORT_FAILURE_LOGGERS:
        throttle_logger(logger_name, config.degraded_warning_interval_seconds)
    # The batch queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE, 2048 spans): an unreachable collector
    # costs dropped spans, never memory.
    provider.add_span_processor(_batch_processor(exporter or build_exporter(config.traces_protocol),
                                                 Redactor.from_config(config)))
    trace.set_tracer_provider(provider)
    return provider


def _batch_processor(exporter: SpanExporter, redactor: Redactor) -> BatchSpanProcessor:
    """The JSON exporter's spans are redacted and encoded as they end (`observability.otlp_json`);
    any other exporter's are redacted on the export thread."""
    if isinstance(exporter, OtlpJsonSpanExporter):
        return EncodingSpanProcessor(exporter, SpanEncoder(redactor))
    return BatchSpanProcessor(RedactingSpanExporter(exporter, redactor))


def build_exporter(protocol: str) -> SpanExporter:
    """The OTLP/HTTP exporter for `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`; gRPC is refused (see above)."""
    if protocol == "http/json":
        return OtlpJsonSpanExporter()
    _refuse_unsupported("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", protocol, TRACE_PROTOCOLS)
    return OTLPSpanExporter()


class RedactingSpanExporter(SpanExporter):
    """Hands the exporter copies of the spans with secrets replaced (`observability.redaction`).

    The instrumentations record what a request carried: the query string in `http.target`
    (`?token=...`), exception messages in events, a database's error (quoting a bound value) in the
    status. This wrapper serves exporters other than the JSON one (`http/protobuf`, a test's); the
    JSON exporter's spans have the same secrets replaced as each one is encoded (`otlp_json.SpanEncoder`).
    """

    def __init__(self, exporter: SpanExporter, redactor: Redactor) -> None:
        self._exporter = exporter
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export([redact_span(span, self._redactor) for span in spans])

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


class _RedactedSpan(ReadableSpan):
    """A finished span with other name, attributes, events, links or status; the dropped counts kept."""

    def __init__(self, span: ReadableSpan, *, name: str, attributes: Any, events: Sequence[Event],
                 links: Sequence[Link], status: Status) -> None:
        super().__init__(name=name, context=span.context, parent=span.parent, resource=span.resource,
                         attributes=attributes, events=events, links=links, kind=span.kind, status=status,
                         start_time=span.start_time, end_time=span.end_time,
                         instrumentation_scope=span.instrumentation_scope)
        self._dropped = (span.dropped_attributes, span.dropped_events, span.dropped_links)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped[2]


def redact_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """The span itself when it holds no secret (most do not), else a redacted copy."""
    name = redactor.name(span.name)
    attributes = redactor.attributes(attribute_dict(span))
    original_events, original_links = events_and_links(span)
    events = [_redact_event(event, redactor) for event in original_events]
    links = [_redact_link(link, redactor) for link in original_links]
    status = span.status
    description = status.description
    clean_description = redactor.text(description) if description else description
    if (name == span.name and attributes is None and clean_description == description
            and all(new is old for new, old in zip([*events, *links], [*original_events, *original_links],
                                                   strict=True))):
        return span
    if clean_description != description:
        status = Status(status.status_code, clean_description)
    return _RedactedSpan(span, name=name, attributes=attributes if attributes is not None else span.attributes,
                         events=events, links=links, status=status)


def _redact_event(event: Event, redactor: Redactor) -> Event:
    name = redactor.name(event.name)
    attributes = redactor.attributes(attribute_dict(event))
    if name == event.name and attributes is None:
        return event
    return Event(name, attributes if attributes is not None else event.attributes, event.timestamp)


def _redact_link(link: Link, redactor: Redactor) -> Link:
    attributes = redactor.attributes(attribute_dict(link))
    return link if attributes is None else Link(link.context, attributes)


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
