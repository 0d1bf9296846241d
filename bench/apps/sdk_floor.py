"""The OpenTelemetry SDK's floor: what one sampled server span costs when nothing else is done.

The bare app inside a WSGI callable that starts one SERVER span per request with the attributes a
server span carries (read from the WSGI environ), makes it current, and ends it; the SDK's
TracerProvider (every trace sampled) and BatchSpanProcessor, with an exporter that discards the
batches: no instrumentation library, no encoding, no export. Any span started through the SDK's
tracer costs at least this (on `trivial`: one span a request; on `db` the traced variants also trace
the connection and the statement, which the floor does not). The project's own spans skip the
tracer's generic steps where their sampling is known already (`observability.sdk_span`), so they
are no longer bound by it (bench/README.md, "The SDK's floor").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine

from bench.apps import bare


class Discard(SpanExporter):
    """Counts the spans and keeps the last batch (for the tests), nothing more."""

    def __init__(self) -> None:
        self.spans = 0
        self.last_batch: Sequence[ReadableSpan] = ()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        self.last_batch = spans
        return SpanExportResult.SUCCESS


class FloorApp:
    """The WSGI app, with its provider and exporter at hand (for the tests)."""

    def __init__(self, engine: Engine | None = None) -> None:
        # Built by gunicorn in its worker, after fork (no preload): the batch thread is the worker's.
        self.provider, self.exporter = TracerProvider(), Discard()
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self._tracer = self.provider.get_tracer("bench.sdk_floor")
        self._app = bare.create_app(engine)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        span = self._tracer.start_span(f"{method} {path}", kind=SpanKind.SERVER, attributes={
            "http.request.method": method, "url.path": path, "http.route": path,
            "url.scheme": environ["wsgi.url_scheme"], "server.address": environ["SERVER_NAME"],
            "server.port": int(environ["SERVER_PORT"]), "network.protocol.version": environ["SERVER_PROTOCOL"][5:],
            "client.address": environ.get("REMOTE_ADDR", ""), "client.port": int(environ.get("REMOTE_PORT") or 0),
            "user_agent.original": environ.get("HTTP_USER_AGENT", ""),
        })
        token = context.attach(trace.set_span_in_context(span))
        try:
            body = self._app.wsgi_app(environ, start_response)
            span.set_attribute("http.response.status_code", 200)  # both bench routes answer 200
            return body
        finally:
            context.detach(token)
            span.end()


def create_app(engine: Engine | None = None) -> FloorApp:
    return FloorApp(engine)
