"""Runs the same statements through an engine traced by the lean SQL spans or by
`opentelemetry-instrumentation-sqlalchemy`, and writes what was traced as JSON (per case: the finished
spans and the statements as the database received them) to the file named by its second argument.

Run as `python -m tests.support.sql_span_pairs lean|upstream OUTPUT SQLITE_FILE [POSTGRES_URL]`, once
per path and each in a process of its own: upstream wraps `Engine.connect` for every engine of the
process, and reads the semantic-convention opt-in once per process. Without a PostgreSQL URL only
SQLite is driven.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from sqlalchemy import URL, Connection, Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from observability.config import ObservabilityConfig
from observability.sql_spans import SqlSpans
from observability.tracing import ProcessTracerProvider, use_stable_http_conventions

TABLE = "sql_span_pairs"
UNSAMPLED_PARENT = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                               trace_flags=TraceFlags(0))


def _statements(conn: Connection) -> None:
    conn.execute(text(f"DELETE FROM {TABLE}"))
    conn.execute(text(f"INSERT INTO {TABLE} (id, label) VALUES (:id, :label)"),
                 [{"id": 1, "label": "one"}, {"id": 2, "label": "two"}])
    conn.execute(text(f"/* a hint */ SELECT label FROM {TABLE} WHERE id = :id"), {"id": 2}).all()
    conn.execute(text("  \n select 1"))


def _failing(conn: Connection) -> None:
    conn.execute(text("SELECT * FROM no_such_table"))


# (name, what runs inside `engine.connect()`, parent): every case the conformance test names; an
# engine that cannot connect runs one, "a connection that fails".
CASES: list[tuple[str, Callable[[Connection], None], str]] = [
    ("statements under a request", _statements, "request"),
    ("statements without a parent", _statements, "none"),
    ("a failing statement", _failing, "request"),
    ("under a caller that did not sample", _statements, "unsampled"),
    ("with instrumentation suppressed", _statements, "suppressed"),
]


def _span(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind.name,
        "span_id": format(span.context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "attributes": dict(span.attributes or {}),
        "status": [span.status.status_code.name, span.status.description],
        "events": [event.name for event in span.events],
    }


def _run(engine: Engine, work: Callable[[Connection], None], parent: str) -> None:
    def connected() -> None:
        try:
            with engine.connect() as conn:
                work(conn)
                conn.commit()
        except DBAPIError:  # the failing case fails on purpose
            return

    tracer = trace.get_tracer("sql_span_pairs")
    if parent == "request":
        with tracer.start_as_current_span("request", kind=trace.SpanKind.SERVER):
            connected()
    elif parent == "unsampled":
        with trace.use_span(NonRecordingSpan(UNSAMPLED_PARENT)):
            connected()
    elif parent == "suppressed":
        with suppress_instrumentation():
            connected()
    else:
        connected()


def _drive(engine: Engine, exporter: InMemorySpanExporter, executed: list[str]) -> list[dict[str, Any]]:
    cases = CASES
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS {TABLE} (id integer PRIMARY KEY, label text)"))
    except DBAPIError:
        cases = [("a connection that fails", _statements, "request")]
    results = []
    for name, work, parent in cases:
        exporter.clear()
        executed.clear()
        _run(engine, work, parent)
        results.append({"case": name, "spans": [_span(span) for span in exporter.get_finished_spans()],
                        "executed": list(executed)})
    return results


def _record_executed(engine: Engine) -> list[str]:
    """The statements as the driver receives them (with the commenter's comment), failing ones too:
    the dialect's own execute methods, which both paths call last, record them."""
    executed: list[str] = []

    def recording(execute: Callable[..., None]) -> Callable[..., None]:
        def record(cursor: Any, statement: str, *rest: Any) -> None:
            executed.append(statement)
            execute(cursor, statement, *rest)

        return record

    dialect = engine.dialect
    for method in ("do_execute", "do_executemany", "do_execute_no_params"):
        setattr(dialect, method, recording(getattr(dialect, method)))
    return executed


def _engines(sqlite_file: str, postgres_url: str | None) -> dict[str, Callable[[], Engine]]:
    # The same file for both paths: its name is in the spans.
    engines: dict[str, Callable[[], Engine]] = {
        "sqlite": lambda: create_engine(f"sqlite:///{sqlite_file}", hide_parameters=True),
        "sqlite, unreachable": lambda: create_engine(f"sqlite:///{sqlite_file}.missing/pairs.db")}
    if postgres_url:
        url = make_url(postgres_url)
        engines["postgresql"] = lambda: create_engine(url, hide_parameters=True)
        # No host in the URL: where the driver connected is read from the driver.
        hostless = URL.create(url.drivername, url.username, url.password, database=url.database,
                              query={"host": url.host or "", "port": str(url.port)})
        engines["postgresql, host in the query"] = lambda: create_engine(hostless, hide_parameters=True)
        engines["postgresql with the commenter"] = lambda: create_engine(url, hide_parameters=True)
    return engines


def _trace(path: str, name: str, engine: Engine) -> None:
    commenter = name.endswith("with the commenter")
    if path == "lean":
        SqlSpans(engine, sql_commenter=commenter, parent_decides=True).trace_engine()
    else:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        instrumentor = SQLAlchemyInstrumentor()
        instrumentor.uninstrument()  # instrument() traces one engine a process; each case has its own
        instrumentor.instrument(engine=engine, enable_commenter=commenter)


def main() -> None:
    path, output, sqlite_file = sys.argv[1:4]
    postgres_url = sys.argv[4] if len(sys.argv) > 4 else None
    use_stable_http_conventions()
    exporter = InMemorySpanExporter()
    # The product's provider: a sampled parent's statements are started as in production.
    provider = ProcessTracerProvider(ObservabilityConfig(traces_sampler="parentbased_always_on"), Resource.create({}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    produced = {}
    for name, make in _engines(sqlite_file, postgres_url).items():
        engine = make()
        executed = _record_executed(engine)  # before tracing: the lean path keeps the methods it finds
        _trace(path, name, engine)
        produced[name] = _drive(engine, exporter, executed)
        engine.dispose()
    Path(output).write_text(json.dumps(produced, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
