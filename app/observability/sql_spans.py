"""CLIENT spans for one SQLAlchemy engine, on the OpenTelemetry API: the lean path.

A `connect` span around each `engine.connect()` (the pool checkout: a pool that runs dry shows up
there) and one span per statement, as `opentelemetry-instrumentation-sqlalchemy` writes them. Upstream
works out again for every statement what cannot change between two statements of one engine (the
URL's attributes, the semantic-convention modes, whether instrumentation is suppressed, twice), enters
and leaves the span's context and sets the attributes one at a time, and the 90 % of statements a
production sampler drops pay for most of it. This path works the engine's attributes out once, hands
each span its attributes as it starts, starts none under a caller that was not sampled when the
sampler follows the parent (and, under one that was, the SDK's span without asking the sampler:
`sdk_span.SampledSpans`), and hooks the dialect rather than the engine (observability.statement_hooks;
bench/README.md, "Where the time went", has the counts). Its spans are checked against upstream's
for the same statements (tests/unit/observability/test_sql_spans.py); `TRACE_SQL_SPANS=upstream`
switches back to it.

Attribute names are those upstream 0.66 writes with `OTEL_SEMCONV_STABILITY_OPT_IN=http`, the
project's default: `server.address`/`server.port`, and the database conventions it writes by default
(`db.system`, `db.name`, `db.user`, `db.statement`, `db.operation`); for the `database` opt-in,
switch back to upstream. Deliberate differences: only the engine given is traced (upstream wraps
`create_engine` and the class's `connect`, so that engines created later are traced too; here each
engine is handed over, as the entry points do), so the copies `engine.execution_options()` makes
have statement spans but no `connect` span; and the pool usage gauge `db.client.connections.usage`
is not kept: it goes to an OpenTelemetry MeterProvider, which this project does not install (its
metrics are Prometheus's). MySQL's and SQL Server's span names take the URL's database, not the
driver's.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy
from opentelemetry import context, trace
from opentelemetry.instrumentation.sqlcommenter_utils import _add_sql_comment
from opentelemetry.instrumentation.utils import _get_opentelemetry_values, is_instrumentation_enabled
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from observability.sdk_span import ProvidersSampledSpans, set_plain_attributes
from observability.statement_hooks import Execute, add_statement_hook

_SPAN = "_observability_sql_span"  # on a failed statement's execution context, for `_fail`
_LEADING_COMMENT = re.compile(r"^/\*.*?\*/")
_traced_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


class SqlSpans:
    """Traces `engine`: call `trace_engine` once; a second call for the same engine does nothing."""

    def __init__(self, engine: Engine, *, sql_commenter: bool = False, parent_decides: bool = False) -> None:
        # A proxy until this process's provider exists (it is created after fork).
        self._tracer = trace.get_tracer(__name__)
        self._sampled_spans = ProvidersSampledSpans(__name__)
        # With a parent-based sampler, a statement under a span that was not sampled is not sampled
        # either: then no span is started at all, rather than one the sampler is asked to drop.
        self._parent_decides = parent_decides
        self._engine = engine
        self._system = _system_name(engine.name)
        self._url_attributes = _url_attributes(engine)
        self._url_database = engine.url.database
        # PostgreSQL's driver knows the database as the server has it (upstream's name for the span).
        self._driver_names_database = self._system == "postgresql"
        # Without a host in the URL (a Unix socket), each statement asks the driver where it connected.
        self._ask_driver = not engine.url.host
        self._connect_attributes = {**self._url_attributes, "db.system": self._system}
        self._commenter: dict[str, str] | None = None
        if sql_commenter:
            self._commenter = {"db_driver": engine.driver, "db_framework": f"sqlalchemy:{sqlalchemy.__version__}"}

    def trace_engine(self) -> None:
        engine = self._engine
        if engine in _traced_engines:
            return
        _traced_engines.add(engine)
        # An instance attribute: the class's method, and so every other engine, is left alone.
        engine.connect = self._traced_connect(engine.connect)  # type: ignore[method-assign]
        add_statement_hook(engine, self._traced)
        # A dialect event: it costs no per-connection dispatch either (observability.statement_hooks).
        event.listen(engine, "handle_error", _fail)

    def _traced_connect(self, connect: Callable[[], Connection]) -> Callable[[], Connection]:
        attributes = self._connect_attributes

        def traced_connect() -> Connection:
            parent = self._parent()
            if parent is None:
                return connect()
            # What `start_as_current_span` does, without its two context managers.
            span = self._start_span("connect", parent)
            if span.is_recording():  # set after the start, as upstream does: the sampler never saw them
                set_plain_attributes(span, attributes)
            token = context.attach(trace.set_span_in_context(span))
            try:
                return connect()
            except Exception as error:
                if span.is_recording():
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                raise
            finally:
                context.detach(token)
                span.end()

        return traced_connect

    def _traced(self, execute: Execute, _executemany: bool) -> Execute:
        def traced_execute(cursor: Any, statement: str, parameters: Any, execution: Any) -> None:
            parent = self._parent()
            if parent is None:
                execute(cursor, statement, parameters, execution)
                return
            span = self._start_statement(cursor, statement, parent)
            if self._commenter is not None and span.is_recording():
                statement = _with_comment(span, statement, self._commenter)
            try:
                execute(cursor, statement, parameters, execution)
            except BaseException:
                if execution is None:
                    span.end()
                else:  # `_fail` ends it, after redaction (the first error listener) scrubbed the message
                    setattr(execution, _SPAN, span)
                raise
            span.end()

        return traced_execute

    def _start_statement(self, cursor: Any, statement: str, parent: SpanContext) -> trace.Span:
        info = _driver_info(cursor) if self._driver_names_database else None
        attributes = self._url_attributes
        if self._ask_driver:
            attributes = {**attributes, **_driver_attributes(info)}
        database = getattr(info, "dbname", None) if self._driver_names_database else self._url_database
        name = _span_name(statement, database, self._system)
        span = self._start_span(name, parent)
        if span.is_recording():
            set_plain_attributes(span, {
                **attributes, "db.statement": statement, "db.system": self._system, "db.operation": name})
        return span

    def _parent(self) -> SpanContext | None:
        """The current span's context, the parent of a span started now (invalid where there is
        none); None where no span is to be started: the parent was not sampled (and decides), or
        instrumentation is suppressed."""
        parent = trace.get_current_span().get_span_context()
        if self._parent_decides and parent.is_valid and not parent.trace_flags.sampled:
            return None
        return parent if is_instrumentation_enabled() else None

    def _start_span(self, name: str, parent: SpanContext) -> trace.Span:
        if parent.is_valid and parent.trace_flags.sampled:
            spans = self._sampled_spans.of(trace.get_tracer_provider())
            if spans is not None and spans.follows_sampled_parent:  # sampled already, as the sampler would say
                return spans.start_child(name, SpanKind.CLIENT, parent)
        return self._tracer.start_span(name, kind=SpanKind.CLIENT)


def _with_comment(span: trace.Span, statement: str, tags: dict[str, str]) -> str:
    # The traceparent in the comment names the statement's span, as upstream's does.
    token = context.attach(trace.set_span_in_context(span))
    try:
        return _add_sql_comment(statement, **tags, **_get_opentelemetry_values())
    finally:
        context.detach(token)


def _fail(failure: Any) -> None:
    execution = failure.execution_context  # None when the failure precedes execution
    span = execution.__dict__.pop(_SPAN, None) if execution is not None else None
    if span is None:
        return
    if span.is_recording():
        span.set_status(Status(StatusCode.ERROR, str(failure.original_exception)))
    span.end()


def _system_name(dialect: str) -> str:
    if "sqlite" in dialect:
        return "sqlite"
    if "postgres" in dialect or dialect == "psycopg2":
        return "postgresql"
    return dialect or "db"


def _url_attributes(engine: Engine) -> dict[str, Any]:
    url = engine.url
    attributes: dict[str, Any] = {}
    if url.host:
        attributes["server.address"] = url.host
    if url.port:
        attributes["server.port"] = int(url.port)
    if url.database:
        attributes["db.name"] = url.database
    if url.username:
        attributes["db.user"] = url.username
    return attributes


def _driver_info(cursor: Any) -> Any:
    return getattr(getattr(cursor, "connection", None), "info", None)


def _driver_attributes(info: Any) -> dict[str, Any]:
    """PostgreSQL's database and address as its driver connected to them (`info`: psycopg's
    ConnectionInfo, None for other databases, whose attributes come from the URL)."""
    if info is None:
        return {}
    attributes: dict[str, Any] = {"db.name": info.dbname} if info.dbname else {}
    if info.host and info.host.startswith("/"):
        attributes["net.transport"] = "other"
        if info.port:  # PostgreSQL names every socket so
            attributes["server.address"] = os.path.join(info.host, f".s.PGSQL.{info.port}")
    else:
        attributes["net.transport"] = "ip_tcp"
        if info.host:
            attributes["server.address"] = info.host
        if info.port:
            attributes["server.port"] = int(info.port)
    return attributes


def _span_name(statement: str, database: str | None, system: str) -> str:
    """The statement's first word and the database, as upstream names them: `SELECT app`."""
    if statement.startswith("/*"):
        statement = _LEADING_COMMENT.sub("", statement)
    words = statement.split(None, 1)
    parts = [words[0]] if words else []
    if database:
        parts.append(database)
    return " ".join(parts) if parts else system
