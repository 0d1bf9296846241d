"""The lean server spans against `opentelemetry-instrumentation-flask`: the same requests, the same
spans (names, kind, stable HTTP attributes, status, exceptions, propagation in and out, probes left
out), except for the two differences `observability.server_spans` documents."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from observability.config import ObservabilityConfig
from observability.request_id import init_request_id
from observability.sdk_span import SampledSpans
from observability.server_spans import ServerSpans
from observability.tracing import (
    NewTraceSampling,
    ProcessTracerProvider,
    SkipPaths,
    process_resource,
    server_spans,
)
from tests.support import server_span_pairs as pairs
from tests.support.demo_app import build_demo_app

ROOT = Path(__file__).resolve().parents[3]
INBOUND_PARENT_SPAN = pairs.SAMPLED_PARENT.split("-")[2]


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    output = tmp_path_factory.mktemp("pairs") / "pairs.json"
    subprocess.run([sys.executable, "-m", "tests.support.server_span_pairs", str(output)], cwd=ROOT,
                   env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'app'}"},
                   capture_output=True, timeout=120, check=True)
    return json.loads(output.read_text())


def _as_upstream_would_be_without_its_quirks(span: dict[str, Any]) -> dict[str, Any]:
    """Upstream's span with the lean path's two documented differences applied."""
    if span["kind"] != "SERVER":
        return span
    attributes = dict(span["attributes"])
    name = span["name"]
    if "http.route" not in attributes and name != "HTTP":
        name = attributes["http.request.method"]  # upstream: method and path
    host, _, port = str(attributes.get("server.address", "")).partition(":")
    if port:  # upstream: the whole Host header, and the listening port
        attributes["server.address"], attributes["server.port"] = host, int(port)
    return {**span, "name": name, "attributes": attributes}


def _server_span(span: dict[str, Any]) -> dict[str, Any]:
    attributes = dict(span["attributes"])
    if "request.id" in attributes:
        attributes["request.id"] = "<the request's id>"  # generated per request
    return {"name": span["name"], "kind": span["kind"], "attributes": attributes, "status": span["status"],
            "events": span["events"],
            "parent": "inbound" if span["parent_span_id"] == INBOUND_PARENT_SPAN else span["parent_span_id"]}


def _shape(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every span's name and kind, and whether its parent is the server span, the caller or none."""
    server_ids = {s["span_id"] for s in result["spans"] if s["kind"] == "SERVER"}
    return sorted((s["name"], s["kind"], "server" if s["parent_span_id"] in server_ids else
                   "inbound" if s["parent_span_id"] == INBOUND_PARENT_SPAN else str(s["parent_span_id"]))
                  for s in result["spans"])


@pytest.mark.parametrize(("lean", "upstream"), [("lean", "upstream"), ("bare_lean", "bare_upstream")])
def test_the_lean_path_produces_the_spans_of_the_upstream_instrumentation(produced, lean, upstream) -> None:
    assert len(produced[lean]) == len(produced[upstream]) > 1
    for mine, upstream_result in zip(produced[lean], produced[upstream], strict=True):
        request = mine["request"]
        theirs = {**upstream_result,
                  "spans": [_as_upstream_would_be_without_its_quirks(s) for s in upstream_result["spans"]]}
        assert mine["status"] == theirs["status"], request
        assert _shape(mine) == _shape(theirs), request
        my_server = [_server_span(s) for s in mine["spans"] if s["kind"] == "SERVER"]
        their_server = [_server_span(s) for s in theirs["spans"] if s["kind"] == "SERVER"]
        assert my_server == their_server, request


def test_the_cases_that_matter_were_exercised(produced) -> None:
    """Guards the comparison above against comparing nothing: each case left its mark."""
    by_request = {r["request"]: r for r in produced["lean"]}
    (item,) = by_request["GET /items/3?token=t0ken&limit=2 ['Host', 'User-Agent']"]["spans"]
    assert item["name"] == "GET /items/<int:item_id>" and item["attributes"]["url.query"] == "token=t0ken&limit=2"
    assert item["attributes"]["http.response.status_code"] == 200 and item["status"] == ["UNSET", None]
    boom = next(s for s in by_request["GET /boom []"]["spans"] if s["kind"] == "SERVER")
    assert boom["status"][0] == "ERROR" and boom["attributes"]["error.type"] == "500"
    (raised,) = [r for r in produced["bare_lean"] if r["request"].startswith("GET /raise")]
    assert raised["spans"][0]["status"] == ["ERROR", "LookupError: nothing here"]
    assert raised["spans"][0]["events"][0][0] == "exception"
    assert all(not r["spans"] for r in produced["lean"] if "/healthz" in r["request"])
    other = by_request["FETCH /ok []"]["spans"][0]
    assert other["name"] == "HTTP" and other["attributes"]["http.request.method_original"] == "FETCH"


@pytest.mark.parametrize("path", ["lean", "upstream"])
def test_the_trace_comes_in_and_goes_on(produced, path) -> None:
    sampled, unsampled, own = [r for r in produced[path] if r["request"].startswith("GET /outbound")]
    (server,) = sampled["spans"]
    assert sampled["sent_on"]["traceparent"] == f"00-{pairs.INBOUND_TRACE}-{server['span_id']}-01"
    assert server["parent_span_id"] == INBOUND_PARENT_SPAN
    # The caller did not sample: nothing is recorded, and its trace and decision go on.
    assert unsampled["spans"] == []
    assert unsampled["sent_on"]["traceparent"].startswith(f"00-{pairs.INBOUND_TRACE}-")
    assert unsampled["sent_on"]["traceparent"].endswith("-00")
    (root,) = own["spans"]
    assert root["parent_span_id"] is None and own["sent_on"]["traceparent"].split("-")[1] == root["trace_id"]


class _RecordingSampler(Sampler):
    """Drops everything, and keeps what it was shown."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._drop = ParentBased(ALWAYS_OFF)

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        return self._drop.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "recording"


def test_unsampled_requests_stop_at_the_attributes_the_sampler_reads(monkeypatch) -> None:
    sampler = _RecordingSampler()
    provider = TracerProvider(sampler=sampler)
    # A provider of its own, made global: the process's would decide a new trace without any sampler.
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    spans = ServerSpans()
    monkeypatch.setattr(spans, "_tracer", provider.get_tracer("test"))
    app = Flask("unsampled")
    init_request_id(app, True, spans)
    seen_span: list[Any] = []

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        from opentelemetry import trace

        seen_span.append(trace.get_current_span())
        return {"id": item_id}

    assert app.test_client().get("/items/7?q=1", headers={"User-Agent": "probe"}).status_code == 200
    read_by_the_sampler = {"http.request.method": "GET", "url.path": "/items/7", "http.route": "/items/<int:item_id>"}
    assert sampler.seen == [read_by_the_sampler]
    (span,) = seen_span
    assert not span.is_recording() and span.get_span_context().is_valid  # a trace id for the logs all the same


class _CountingStarts:
    """Counts the spans started through the SDK's tracer, which asks the sampler, and those started
    as sampled already (`SampledSpans`), which does not."""

    def __init__(self, monkeypatch) -> None:
        self.by_tracer = self.sampled = 0
        by_tracer, sampled = sdk_trace.Tracer.start_span, SampledSpans.start_root

        def count_by_tracer(tracer, *args: Any, **kwargs: Any) -> Any:
            self.by_tracer += 1
            return by_tracer(tracer, *args, **kwargs)

        def count_sampled(spans, *args: Any, **kwargs: Any) -> Any:
            self.sampled += 1
            return sampled(spans, *args, **kwargs)

        monkeypatch.setattr(sdk_trace.Tracer, "start_span", count_by_tracer)
        monkeypatch.setattr(SampledSpans, "start_root", count_sampled)


def _new_trace_app(monkeypatch, sampler: str, argument: str = "") -> tuple[Flask, InMemorySpanExporter,
                                                                            _CountingStarts, list[Any]]:
    """A Flask app whose server spans come from the process's own provider (`start_provider`'s kind),
    made global for the test; the view keeps the span current in it."""
    from opentelemetry import trace

    config = ObservabilityConfig(traces_sampler=sampler, traces_sampler_arg=argument)
    provider = ProcessTracerProvider(config, process_resource(config))
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    counting = _CountingStarts(monkeypatch)
    app = Flask("new-traces")
    init_request_id(app, True, ServerSpans())
    current: list[Any] = []

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        current.append(trace.get_current_span())
        return {"id": item_id}

    return app, exported, counting, current


def test_new_traces_are_decided_once_and_the_unsampled_ones_never_reach_the_sdk(monkeypatch) -> None:
    app, exported, counting, current = _new_trace_app(monkeypatch, "parentbased_traceidratio", "0.5")
    client = app.test_client()
    for number in range(200):
        assert client.get(f"/items/{number}").status_code == 200
    rule = NewTraceSampling("parentbased_traceidratio", "0.5", (), RandomIdGenerator())
    seen = [span.get_span_context() for span in current]
    sampled = {c.trace_id for c in seen if rule.sampled(c.trace_id, "/items/1")}
    recorded = {span.context.trace_id for span in exported.get_finished_spans()}
    assert recorded == sampled and 0 < len(sampled) < 200  # decided by the trace id each request shows
    # Only the spans it records reach the SDK, which does not ask its sampler again.
    assert (counting.sampled, counting.by_tracer) == (len(sampled), 0)
    # What the SDK itself makes of a request it does not sample.
    reference = TracerProvider(sampler=ALWAYS_OFF).get_tracer("reference").start_span("GET", Context(), SpanKind.SERVER)
    expected = reference.get_span_context()
    unsampled = [span for span in current if span.get_span_context().trace_id not in sampled]
    for span in unsampled:
        context = span.get_span_context()
        assert type(span) is type(reference) and not span.is_recording() and context.is_valid
        assert (context.trace_flags, context.trace_state, context.is_remote) == (
            expected.trace_flags, expected.trace_state, expected.is_remote)
    assert len({span.get_span_context().span_id for span in unsampled}) == len(unsampled)


def test_the_process_sampler_is_shown_a_request_only_when_its_path_is_dropped(monkeypatch) -> None:
    # Whatever the sampler is shown, the SDK checks and copies onto the span; the process's own
    # sampler reads the path alone, so a request it keeps has all its attributes set after. (Only
    # requests that carry a trace context are the sampler's to decide: the others, `NewTraceSampling`'s.)
    shown: list[dict[str, Any]] = []
    asked = SkipPaths.should_sample

    def showing(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        shown.append(dict(attributes or {}))
        return asked(self, parent_context, trace_id, name, kind, attributes, links, trace_state)

    monkeypatch.setattr(SkipPaths, "should_sample", showing)
    app, exported, _, _ = _new_trace_app(monkeypatch, "parentbased_always_on")
    app.get("/healthz")(lambda: "ok")
    client = app.test_client()
    caller = {"traceparent": pairs.SAMPLED_PARENT}
    assert client.get("/items/7?q=1", headers=caller).status_code == 200
    assert client.get("/healthz", headers=caller).status_code == 200
    assert shown == [{}, {"http.request.method": "GET", "url.path": "/healthz", "http.route": "/healthz"}]
    (span,) = exported.get_finished_spans()  # the probe's was dropped
    assert list(span.attributes)[:4] == ["http.request.method", "url.path", "http.route", "url.scheme"]
    assert (span.attributes["url.path"], span.attributes["url.query"]) == ("/items/7", "q=1")


def test_requests_that_carry_a_trace_context_are_left_to_the_sdk(monkeypatch) -> None:
    app, exported, counting, current = _new_trace_app(monkeypatch, "parentbased_always_off")
    client = app.test_client()
    assert client.get("/items/1").status_code == 200
    assert (counting.sampled, counting.by_tracer) == (0, 0) and not current[-1].is_recording()
    assert client.get("/items/2", headers={"traceparent": pairs.SAMPLED_PARENT}).status_code == 200
    (span,) = exported.get_finished_spans()  # the caller sampled it: the parent decides
    assert span.parent.span_id == int(INBOUND_PARENT_SPAN, 16) and counting.by_tracer == 1
    assert client.get("/items/3", headers={"baggage": "tenant=t1"}).status_code == 200
    assert (counting.sampled, counting.by_tracer) == (0, 2)  # baggage alone: extracted by the SDK's path, as before


def test_the_switch_goes_back_to_the_upstream_instrumentation(make_config, spans) -> None:
    # `spans`: the session's provider is installed first, so building these apps installs none of its own.
    assert isinstance(server_spans(make_config(tracing_enabled=True)), ServerSpans)
    assert server_spans(make_config(tracing_enabled=True, server_spans="upstream")) is None
    upstream, _ = build_demo_app(make_config(tracing_enabled=True, server_spans="upstream"))
    lean, _ = build_demo_app(make_config(tracing_enabled=True))
    assert getattr(upstream, "_is_instrumented_by_opentelemetry", False) is True
    assert getattr(lean, "_is_instrumented_by_opentelemetry", False) is False
    with pytest.raises(ValueError, match="TRACE_SERVER_SPANS"):
        server_spans(make_config(tracing_enabled=True, server_spans="fast"))
