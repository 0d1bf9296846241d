"""The lean SQL spans against `opentelemetry-instrumentation-sqlalchemy`: the same statements, the same
spans (names, kind, attributes, status, parents, the statements as executed with the commenter on),
on SQLite always and on PostgreSQL where one runs, except where `observability.sql_spans` says."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, TraceState
from opentelemetry.util.types import Attributes
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from observability import sql_spans
from observability.redaction import hide_bound_values_in_errors
from observability.sql_spans import SqlSpans
from observability.statement_hooks import Execute, add_statement_hook
from observability.tracing import instrument_libraries
from tests.support import sql_span_pairs as pairs

ROOT = Path(__file__).resolve().parents[3]
_TRACEPARENT = re.compile(r"traceparent='00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]'")
_produced: dict[str, dict[str, dict[str, Any]]] = {}


@pytest.fixture(params=["sqlite", "postgresql"])
def produced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """{path: {engine: cases}} for SQLite alone, or with the session's PostgreSQL."""
    if request.param not in _produced:
        extra = [request.getfixturevalue("postgres_dsn")] if request.param == "postgresql" else []
        workdir = tmp_path_factory.mktemp("sql-pairs")
        _produced[request.param] = {path: _run_pairs(path, workdir, extra) for path in ("lean", "upstream")}
    return _produced[request.param]


def _run_pairs(path: str, workdir: Path, extra: list[str]) -> dict[str, Any]:
    output = workdir / f"{path}.json"
    subprocess.run([sys.executable, "-m", "tests.support.sql_span_pairs", path, str(output),
                    str(workdir / "pairs.db"), *extra], cwd=ROOT,
                   env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'app'}"},
                   capture_output=True, timeout=120, check=True)
    return json.loads(output.read_text())


def _comparable(case: dict[str, Any]) -> dict[str, Any]:
    """Spans with parents named instead of numbered, and each executed statement's comment checked
    to name its own span, then its ids left out."""
    names = {span["span_id"]: span["name"] for span in case["spans"]}
    spans = [{"name": s["name"], "kind": s["kind"], "attributes": s["attributes"], "status": s["status"],
              "events": s["events"], "parent": names.get(s["parent_span_id"], s["parent_span_id"])}
             for s in case["spans"]]
    statement_spans = [s for s in case["spans"] if s["name"] != "connect" and s["kind"] == "CLIENT"]
    for index, statement in enumerate(case["executed"]):
        found = _TRACEPARENT.search(statement)
        if found:
            assert found.group(2) == statement_spans[index]["span_id"], statement
    executed = [_TRACEPARENT.sub("traceparent='<its span>'", statement) for statement in case["executed"]]
    return {"spans": spans, "executed": executed}


def test_the_lean_path_produces_the_spans_of_the_upstream_instrumentation(produced) -> None:
    lean, upstream = produced["lean"], produced["upstream"]
    assert lean.keys() == upstream.keys()
    for engine, cases in lean.items():
        assert len(cases) == len(upstream[engine]) == (1 if engine.endswith("unreachable") else len(pairs.CASES))
        for mine, theirs in zip(cases, upstream[engine], strict=True):
            assert _comparable(mine) == _comparable(theirs), (engine, mine["case"])


def test_the_cases_that_matter_were_exercised(produced) -> None:
    """Guards the comparison above against comparing nothing: each case left its mark."""
    for engine, cases in produced["lean"].items():
        by_case = {case["case"]: case for case in cases}
        if engine.endswith("unreachable"):
            (connect, _) = by_case["a connection that fails"]["spans"]
            assert connect["name"] == "connect" and connect["status"][0] == "ERROR"
            assert connect["events"] == ["exception"]
            continue
        requested = by_case["statements under a request"]["spans"]
        names = [span["name"] for span in requested]
        database = "app" if engine.startswith("postgresql") else str(requested[1]["attributes"]["db.name"])
        assert names == ["connect", f"DELETE {database}", f"INSERT {database}", f"SELECT {database}",
                         f"select {database}", "request"], engine
        request_id = requested[-1]["span_id"]
        assert all(span["parent_span_id"] == request_id for span in requested[:-1])
        (connect, failed, _) = by_case["a failing statement"]["spans"]
        assert connect["status"] == ["UNSET", None]
        assert failed["status"][0] == "ERROR" and "no_such_table" in failed["status"][1]
        for silent in ("under a caller that did not sample", "with instrumentation suppressed"):
            assert by_case[silent]["spans"] == [] and len(by_case[silent]["executed"]) == 4, (engine, silent)
        commented = engine.endswith("with the commenter")
        assert all(bool(_TRACEPARENT.search(s)) == commented for s in by_case["statements under a request"]["executed"])
    if "postgresql, host in the query" in produced["lean"]:
        from_driver = produced["lean"]["postgresql, host in the query"][0]["spans"][1]["attributes"]
        from_url = produced["lean"]["postgresql"][0]["spans"][1]["attributes"]
        assert from_driver["net.transport"] == "ip_tcp" and "net.transport" not in from_url
        assert (from_driver["server.address"], from_driver["server.port"]) == (from_url["server.address"],
                                                                               from_url["server.port"])


class _RecordingSampler(Sampler):
    """Samples everything, and keeps the names of the spans it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        self.asked.append(name)
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "recording"


@pytest.mark.parametrize(("parent_decides", "asked"), [(True, []), (False, ["connect", "SELECT"])])
def test_under_an_unsampled_parent_no_span_is_started_when_the_parent_decides(
        monkeypatch, parent_decides: bool, asked: list[str]) -> None:
    sampler = _RecordingSampler()
    provider = TracerProvider(sampler=sampler)
    engine = create_engine("sqlite://")
    spans = SqlSpans(engine, parent_decides=parent_decides)
    monkeypatch.setattr(spans, "_tracer", provider.get_tracer("test"))
    spans.trace_engine()
    with trace.use_span(NonRecordingSpan(pairs.UNSAMPLED_PARENT)), engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert sampler.asked == asked


def test_an_engine_is_traced_once(monkeypatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = create_engine("sqlite://")
    for _ in range(2):
        spans = SqlSpans(engine)
        monkeypatch.setattr(spans, "_tracer", provider.get_tracer("test"))
        spans.trace_engine()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert [span.name for span in exporter.get_finished_spans()] == ["connect", "SELECT"]


def test_a_unix_socket_is_named_as_upstream_names_it() -> None:
    def info(host: str, port: str) -> Any:
        return SimpleNamespace(dbname="app", host=host, port=port)  # what psycopg's ConnectionInfo tells

    assert sql_spans._driver_attributes(info("/run/postgresql", "5432")) == {
        "db.name": "app", "net.transport": "other", "server.address": "/run/postgresql/.s.PGSQL.5432"}
    assert sql_spans._driver_attributes(info("db.internal", "6432")) == {
        "db.name": "app", "net.transport": "ip_tcp", "server.address": "db.internal", "server.port": 6432}


def test_the_switch_goes_back_to_the_upstream_instrumentation(make_config) -> None:
    upstream = SQLAlchemyInstrumentor()
    assert not upstream.is_instrumented_by_opentelemetry
    lean_engine, upstream_engine = create_engine("sqlite://"), create_engine("sqlite://")
    instrument_libraries(make_config(tracing_enabled=True), engine=lean_engine)
    assert not upstream.is_instrumented_by_opentelemetry and "connect" in vars(lean_engine)
    try:
        instrument_libraries(make_config(tracing_enabled=True, sql_spans="upstream"), engine=upstream_engine)
        assert upstream.is_instrumented_by_opentelemetry and "connect" not in vars(upstream_engine)
    finally:
        upstream.uninstrument()  # it wraps every engine of the process
    with pytest.raises(ValueError, match="TRACE_SQL_SPANS"):
        instrument_libraries(make_config(tracing_enabled=True, sql_spans="fast"), engine=upstream_engine)


def test_a_failed_statements_span_ends_once_with_the_scrubbed_message(monkeypatch) -> None:
    """The span outlives the exception until the error listeners have run: redaction's goes first."""
    secret = "Sup3r-Secret-Pa55word"
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = create_engine("sqlite://", hide_parameters=True)
    hide_bound_values_in_errors(engine)

    def echoing(_execute: Execute, _executemany: bool) -> Execute:
        def refuse(_cursor: Any, _statement: str, parameters: Any, _context: Any) -> None:
            raise sqlite3.DataError(f'invalid input syntax for type integer: "{parameters[0]}"')

        return refuse

    add_statement_hook(engine, echoing)  # as PostgreSQL quotes a value it could not use
    spans = SqlSpans(engine)
    monkeypatch.setattr(spans, "_tracer", provider.get_tracer("test"))
    spans.trace_engine()
    with pytest.raises(DBAPIError), engine.connect() as conn:
        conn.execute(text("SELECT CAST(:password AS INTEGER)"), {"password": secret})
    (_, failed) = exporter.get_finished_spans()
    assert failed.name == "SELECT" and failed.status.status_code.name == "ERROR"
    assert failed.status.description == 'invalid input syntax for type integer: "[REDACTED]"'
