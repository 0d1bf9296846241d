"""One SERVER span per Flask request, on the OpenTelemetry API: the lean path.

`opentelemetry-instrumentation-flask` builds its attributes twice per request, wraps
`start_response`, records its own metrics and does all of it before the sampler decides, so the
90 % of requests a production sampler drops pay nearly the full price (bench/README.md has the
profile). This path starts the span in the request's first hook with the few attributes the sampler
reads (method, path, route) and adds the rest only to a span that records. A request that carries no
trace context starts a new trace, which the process's sampler decides by its path and trace id alone
(`tracing.NewTraceSampling`): one it does not sample gets the SDK's non-recording span without any of
the SDK's work, 46 % fewer instructions than its trace context cost (bench/README.md), and one it
samples the SDK's span without the SDK's tracer asking the sampler again (`sdk_span.SampledSpans`).
Its spans are checked against the upstream instrumentation's for the same requests
(tests/unit/observability/test_server_spans.py); `TRACE_SERVER_SPANS=upstream` switches back to it.

Stable HTTP semantic conventions. Two deliberate differences from upstream 0.66: a request no route
matched is named by its method alone (upstream appends the path, one span name per scanned URL), and
`server.address` is the Host header's host without its port (which goes to `server.port`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Request, Response
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.wsgi import wsgi_getter  # reads traceparent and baggage from the environ
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from observability.context import RequestContext
from observability.sdk_span import ProvidersSampledSpans, set_plain_attributes

if TYPE_CHECKING:
    from observability.sdk_span import SampledSpans
    from observability.tracing import NewTraceSampling

# RFC 9110 and 5789 methods; others are reported as `_OTHER`, as the conventions ask.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
                            "QUERY"})
# The key the SQLAlchemy instrumentation's commenter reads the framework's tags from.
_SQLCOMMENTER_KEY = "SQLCOMMENTER_ORM_TAGS_AND_VALUES"
# What the propagator extracts from a request without its headers (a context is immutable).
_NO_TRACE_CONTEXT = Context()


class ServerSpans:
    """Starts, finishes and ends the server span of each request; `observability.request_id` calls it
    from its hooks, so the span covers every other hook of the request."""

    def __init__(self, *, sql_commenter: bool = False, flask_version: str = "") -> None:
        # A proxy until this process's provider exists (it is created after fork).
        self._tracer = trace.get_tracer(__name__)
        self._commenter_framework = f"flask:{flask_version}" if sql_commenter else None
        self._context_keys: tuple[object, tuple[str, ...]] = (None, ())  # (propagator, the environ keys it reads)
        self._sampled_spans = ProvidersSampledSpans(__name__)

    def start(self, ctx: RequestContext, req: Request) -> None:
        environ = req.environ
        provider = trace.get_tracer_provider()
        carries_trace_context = self._carries_trace_context(environ)
        sampled_root = None
        if not carries_trace_context and self._commenter_framework is None:
            # The process's own provider decides a new trace and starts its span itself.
            new_traces = getattr(provider, "new_traces", None)
            spans = self._sampled_spans.of(provider) if new_traces is not None else None
            if spans is not None:
                sampled_root = _decide_new_trace(ctx, environ, new_traces, spans)
                if sampled_root is None:
                    return  # not sampled: its non-recording span is current
        raw_method = environ.get("REQUEST_METHOD", "")
        method = raw_method.upper()
        if method not in _KNOWN_METHODS:
            method = "_OTHER"
        rule = req.url_rule
        route = rule.rule if rule is not None else None
        name = _span_name(method, route)
        # What the sampler may read; everything else waits for its verdict.
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": environ.get("PATH_INFO") or "/"}
        if route is not None:
            attributes["http.route"] = route
        given = None
        if sampled_root is not None:  # the SDK's span, started as its tracer would, the sampler not asked again
            parent = _NO_TRACE_CONTEXT
            spans, trace_id = sampled_root
            span = spans.start_root(name, SpanKind.SERVER, trace_id, parent)
        else:
            # Without any of the propagator's headers it would extract an empty context.
            parent = propagate.extract(environ, getter=wsgi_getter) if carries_trace_context else _NO_TRACE_CONTEXT
            given = _for_sampler(provider, attributes)
            span = self._tracer.start_span(name, parent, SpanKind.SERVER, given)
        if span.is_recording():
            if given is None:
                attributes.update(_request_attributes(environ, raw_method, method))
            else:
                attributes = _request_attributes(environ, raw_method, method)
            attributes["request.id"] = ctx.request_id
            set_plain_attributes(span, attributes)
        span_context = trace.set_span_in_context(span, parent)
        if self._commenter_framework is not None:
            span_context = context.set_value(_SQLCOMMENTER_KEY, self._commenter_tags(req, route), span_context)
        ctx.span = span
        ctx.span_token = context.attach(span_context)

    def _carries_trace_context(self, environ: dict[str, Any]) -> bool:
        propagator = propagate.get_global_textmap()
        known, keys = self._context_keys
        if propagator is not known:
            keys = tuple(f"HTTP_{field.upper().replace('-', '_')}" for field in propagator.fields)
            self._context_keys = (propagator, keys)
        return not environ.keys().isdisjoint(keys)

    def finish(self, ctx: RequestContext, response: Response) -> None:
        span = ctx.span
        if span is None or not span.is_recording():
            return
        status = response.status_code
        if status >= 500:
            set_plain_attributes(span, {"http.response.status_code": status, "error.type": str(status)})
            span.set_status(Status(StatusCode.ERROR))
        else:
            set_plain_attributes(span, {"http.response.status_code": status})

    def end(self, ctx: RequestContext, error: BaseException | None) -> None:
        span, token = ctx.span, ctx.span_token
        if span is None or token is None:
            return
        ctx.span = ctx.span_token = None
        try:
            if error is not None and span.is_recording():
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
        finally:
            context.detach(token)

    def _commenter_tags(self, req: Request, route: str | None) -> dict[str, str]:
        tags = {"framework": self._commenter_framework or ""}
        if req.endpoint:
            tags["controller"] = req.endpoint
        if route:
            tags["route"] = route
        return tags


def _decide_new_trace(ctx: RequestContext, environ: dict[str, Any], new_traces: NewTraceSampling,
                      spans: SampledSpans) -> tuple[SampledSpans, int] | None:
    """Draws the trace id of a request that starts a trace and decides it: None when it is not
    sampled, and the non-recording span the SDK would make for it is then current; else what starts
    its span, and the trace id."""
    trace_id = new_traces.ids.generate_trace_id()
    if new_traces.sampled(trace_id, environ.get("PATH_INFO") or "/"):
        return spans, trace_id
    span = NonRecordingSpan(SpanContext(trace_id, new_traces.ids.generate_span_id(), False, new_traces.flags))
    ctx.span = span
    # On an empty context, as the SDK path's on what the propagator extracted from no header.
    ctx.span_token = context.attach(trace.set_span_in_context(span, _NO_TRACE_CONTEXT))
    return None


def _span_name(method: str, route: str | None) -> str:
    if method == "_OTHER":
        return "HTTP"
    return f"{method} {route}" if route is not None else method


def _for_sampler(provider: object, attributes: dict[str, Any]) -> dict[str, Any] | None:
    """What the sampler is given: nothing where the process's own sampler reads only the path and
    keeps it (the SDK checks and copies onto the span whatever the sampler was given, and those
    are set with the others after); everything else, all three."""
    skipped = getattr(provider, "skipped_paths", None)
    if skipped is None or attributes["url.path"] in skipped:
        return attributes
    return None


def _request_attributes(environ: dict[str, Any], raw_method: str, method: str) -> dict[str, Any]:
    """The rest of the stable HTTP server attributes, for spans that record."""
    attributes: dict[str, Any] = {"url.scheme": environ.get("wsgi.url_scheme", "http")}
    if raw_method != method:  # `_OTHER`, or a method not in capitals
        attributes["http.request.method_original"] = raw_method
    host, port = _host_and_port(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "")
    if host:
        attributes["server.address"] = host
    port = port or environ.get("SERVER_PORT") or ""
    if port.isdigit():
        attributes["server.port"] = int(port)
    _copy(attributes, environ, (("QUERY_STRING", "url.query"), ("REMOTE_ADDR", "client.address"),
                                ("HTTP_USER_AGENT", "user_agent.original")))
    remote_port = environ.get("REMOTE_PORT")
    if remote_port and str(remote_port).isdigit():
        attributes["client.port"] = int(remote_port)
    protocol = environ.get("SERVER_PROTOCOL", "")
    if protocol.upper().startswith("HTTP/"):
        attributes["network.protocol.version"] = protocol[5:]
    return attributes


def _host_and_port(host_header: str) -> tuple[str, str]:
    """`example.com:8080` is ("example.com", "8080"), `[::1]:80` ("::1", "80"), `example.com` ("example.com", "")."""
    host, colon, port = host_header.rpartition(":")
    if colon and port.isdigit() and (host.endswith("]") or ":" not in host):
        return host.strip("[]"), port
    return host_header.strip("[]"), ""


def _copy(attributes: dict[str, Any], environ: dict[str, Any], names: Iterable[tuple[str, str]]) -> None:
    for key, attribute in names:
        value = environ.get(key)
        if value:
            attributes[attribute] = value
