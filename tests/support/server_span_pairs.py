"""Sends the same requests to two copies of an app, one with the lean server spans and one with
`opentelemetry-instrumentation-flask`, and prints what each produced as JSON (one object per
request: the finished spans, the traceparent the handler would send on, the response status) to the
file named by its argument (the apps' logs go to standard output).

Run as `python -m tests.support.server_span_pairs OUTPUT`, in a process of its own: the instrumentations
read the semantic-convention opt-in once per process, and the provider is process-wide.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from flask import Flask
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability import ObservabilityConfig
from observability.request_id import init_request_id
from observability.server_spans import ServerSpans
from observability.tracing import ProcessTracerProvider, use_stable_http_conventions
from sandbox.net import free_port
from tests.support.demo_app import build_demo_app

INBOUND_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SAMPLED_PARENT = f"00-{INBOUND_TRACE}-00f067aa0ba902b7-01"
UNSAMPLED_PARENT = f"00-{INBOUND_TRACE}-00f067aa0ba902b7-00"

# (method, path and query, headers, body): every case the conformance test names.
REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [
    ("GET", "/items/3?token=t0ken&limit=2", {"User-Agent": "probe/1.0", "Host": "api.example"}, b""),
    ("GET", "/items/101", {}, b""),  # the route matched, the handler aborts with 404
    ("GET", "/nowhere", {}, b""),  # no route
    ("PUT", "/items/3", {}, b""),  # 405
    ("POST", "/echo", {"Content-Type": "text/plain"}, b"hello"),
    ("GET", "/boom", {}, b""),  # the project's error handler turns it into a 500
    ("FETCH", "/ok", {}, b""),  # not a known method
    ("get", "/ok", {}, b""),  # a known one, not in capitals
    ("GET", "/healthz", {}, b""),  # a probe: never traced
    ("GET", "/healthz", {"traceparent": SAMPLED_PARENT}, b""),  # ... not even under a sampled parent
    ("GET", "/outbound", {"traceparent": SAMPLED_PARENT}, b""),  # joins the caller's trace, passes it on
    ("GET", "/outbound", {"traceparent": UNSAMPLED_PARENT}, b""),  # the caller's decision is kept
    ("GET", "/outbound", {"Host": "127.0.0.1:8443"}, b""),
]
# A bare Flask app (no error handler of the project's): the exception reaches the teardown.
BARE_REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [("GET", "/raise", {}, b""), ("GET", "/ok", {}, b"")]


def _add_routes(app: Flask) -> None:
    """What the demo app lacks: a handler that passes the trace on, and one whose exception escapes."""
    @app.get("/outbound")
    def outbound() -> Any:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # what an outgoing call from the handler would carry
        return carrier

    @app.get("/raise")
    def fail() -> Any:
        raise LookupError("nothing here")


def _project_app(server_spans: str) -> Flask:
    config = ObservabilityConfig(tracing_enabled=True, server_spans=server_spans,
                                 redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app, _ = build_demo_app(config)
    _add_routes(app)
    return app


def _bare_app(lean: bool) -> Flask:
    app = Flask(f"bare-{'lean' if lean else 'upstream'}")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    init_request_id(app, True, ServerSpans() if lean else None)
    if not lean:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app)
    _add_routes(app)

    @app.get("/ok")
    def ok() -> Any:
        return {"ok": True}

    return app


def _span(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "attributes": dict(span.attributes or {}),
        "status": [span.status.status_code.name, span.status.description],
        "events": [[event.name, sorted((event.attributes or {}).keys())] for event in span.events],
    }


def _drive(app: Flask, exporter: InMemorySpanExporter,
           requests: list[tuple[str, str, dict[str, str], bytes]]) -> list[dict[str, Any]]:
    client = app.test_client()
    results = []
    for method, target, headers, body in requests:
        exporter.clear()
        response = client.open(target, method=method, headers=headers, data=body)
        results.append({
            "request": f"{method} {target} {sorted(headers)}",
            "status": response.status_code,
            "sent_on": response.get_json(silent=True) if target.startswith("/outbound") else None,
            "spans": [_span(span) for span in exporter.get_finished_spans()],
        })
    return results


def main() -> None:
    use_stable_http_conventions()
    exporter = InMemorySpanExporter()
    # The product's provider: new traces are decided and started as in production.
    provider = ProcessTracerProvider(ObservabilityConfig(traces_sampler="parentbased_always_on",
                                                         access_log_excluded_paths=("/healthz", "/readyz")),
                                     Resource.create({}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    pairs = {
        "lean": _drive(_project_app("lean"), exporter, REQUESTS),
        "upstream": _drive(_project_app("upstream"), exporter, REQUESTS),
        "bare_lean": _drive(_bare_app(lean=True), exporter, BARE_REQUESTS),
        "bare_upstream": _drive(_bare_app(lean=False), exporter, BARE_REQUESTS),
    }
    with open(sys.argv[1], "w", encoding="utf-8") as output:
        json.dump(pairs, output, default=str)


if __name__ == "__main__":
    main()
