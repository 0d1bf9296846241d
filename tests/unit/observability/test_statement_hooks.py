"""Hooks around the driver's execute, on a real SQLAlchemy engine (SQLite)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from observability.slow_queries import watch_engine
from observability.sql_spans import SqlSpans
from observability.statement_hooks import Execute, add_statement_hook


def _recording(calls: list[tuple[str, str, bool]], name: str):
    def hook(execute: Execute, executemany: bool) -> Execute:
        def run(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
            calls.append((name, statement.split(maxsplit=1)[0], executemany))
            execute(cursor, statement, parameters, context)

        return run

    return hook


@pytest.fixture
def engine() -> Engine:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    return engine


def test_every_statement_passes_the_hooks_once_the_last_added_outermost(engine) -> None:
    calls: list[tuple[str, str, bool]] = []
    add_statement_hook(engine, _recording(calls, "inner"))
    add_statement_hook(engine, _recording(calls, "outer"))
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (:n)"), [{"n": 1}, {"n": 2}])
        connection.execute(text("INSERT INTO t VALUES (3)"))
        connection.exec_driver_sql("INSERT INTO t VALUES (4)", execution_options={"no_parameters": True})
        rows = connection.execute(text("SELECT n FROM t ORDER BY n")).scalars().all()
    assert rows == [1, 2, 3, 4]  # each statement ran once: not twice, not skipped
    assert calls == [("outer", "INSERT", True), ("inner", "INSERT", True),
                     ("outer", "INSERT", False), ("inner", "INSERT", False),
                     ("outer", "INSERT", False), ("inner", "INSERT", False),
                     ("outer", "SELECT", False), ("inner", "SELECT", False)]


def test_an_engines_copies_share_its_hooks(engine) -> None:
    calls: list[tuple[str, str, bool]] = []
    add_statement_hook(engine, _recording(calls, "hook"))
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text("SELECT 1"))
    assert calls == [("hook", "SELECT", False)]


def test_a_failure_leaves_the_hooks_and_reaches_the_error_listeners(engine) -> None:
    calls: list[tuple[str, str, bool]] = []
    seen_by_listener: list[str] = []
    add_statement_hook(engine, _recording(calls, "hook"))
    event.listen(engine, "handle_error", lambda failure: seen_by_listener.append(failure.statement))
    with pytest.raises(OperationalError, match="no such table"), engine.connect() as connection:
        connection.execute(text("SELECT * FROM missing"))
    assert calls == [("hook", "SELECT", False)]
    assert seen_by_listener == ["SELECT * FROM missing"]


def test_timing_and_tracing_add_no_listener_to_the_engine(engine) -> None:
    """An engine listener would cost every connection a dispatch join (statement_hooks' docstring)."""
    watch_engine(engine, threshold_ms=100, statement_max_chars=100)
    SqlSpans(engine).trace_engine()
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        assert not engine._has_events and not connection._has_events
