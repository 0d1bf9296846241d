"""Slow-query log on a real SQLAlchemy engine (SQLite: no server needed for these rules)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from observability.logging import configure_logging
from observability.slow_queries import operation_of, watch_engine

SECRET = "Sup3r-Secret-Pa55word"


@pytest.fixture
def engine(make_config):
    configure_logging(make_config())
    engine = create_engine("sqlite://", hide_parameters=True)

    @event.listens_for(engine, "connect")
    def add_sleep(dbapi_connection, _record) -> None:
        dbapi_connection.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000) or 0)

    watch_engine(engine, threshold_ms=20, statement_max_chars=60)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE users (name TEXT, password TEXT)"))
    return engine


def test_fast_statements_are_timed_but_not_logged(engine, log_lines) -> None:
    before = REGISTRY.get_sample_value("db_query_duration_seconds_count", {"operation": "SELECT"}) or 0
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert REGISTRY.get_sample_value("db_query_duration_seconds_count", {"operation": "SELECT"}) == before + 1
    assert log_lines.events("slow_query") == []


def test_slow_statement_is_logged_without_parameters(engine, log_lines) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users SELECT :name, :password WHERE sleep_ms(40) = 0 AND 'a padding clause' <> ''"),
            {"name": "bob", "password": SECRET},
        )
    records = log_lines.read()
    (slow,) = [r for r in records if r.get("event") == "slow_query"]
    assert slow["operation"] == "INSERT"
    assert slow["duration_ms"] >= 40
    assert slow["statement_truncated"] is True and len(slow["statement"]) == 60
    assert slow["outcome"] == "ok"
    assert all(SECRET not in str(r) for r in records)


def test_failed_statement_is_handled_and_does_not_leak_timing(engine, log_lines) -> None:
    with engine.connect() as connection:
        for _ in range(3):
            with pytest.raises(OperationalError) as failure:
                connection.execute(text("SELECT sleep_ms(30), * FROM missing_table WHERE password = :p"),
                                   {"p": SECRET})
            assert SECRET not in str(failure.value)
        connection.execute(text("SELECT 1"))
    # SQLite fails at prepare time, before the cursor runs: nothing is timed, nothing leaks.
    slow = log_lines.events("slow_query")
    assert all(SECRET not in str(r) for r in slow)


def test_failure_after_execution_started_is_logged_as_error(engine, log_lines) -> None:
    with engine.connect() as connection, pytest.raises(OperationalError):
        # Fails at run time, after sleeping: a failing statement is timed too.
        connection.execute(text("SELECT sleep_ms(30) + abs(-9223372036854775807 - 1)"))
    (slow,) = log_lines.events("slow_query")
    assert slow["outcome"] == "error"
    assert slow["duration_ms"] >= 30


@pytest.mark.parametrize(("statement", "operation"), [
    ("SELECT 1", "SELECT"), ("  insert into x values (1)", "INSERT"), ("VACUUM", "OTHER"), ("", "OTHER"),
])
def test_operation_of(statement: str, operation: str) -> None:
    assert operation_of(statement) == operation


def test_literals_assigned_to_secret_names_are_hidden_in_logged_statements(make_config, log_lines) -> None:
    from observability.redaction import Redactor

    configure_logging(make_config())
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def add_sleep(dbapi_connection, _record) -> None:
        dbapi_connection.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000) or 0)

    watch_engine(engine, threshold_ms=20, statement_max_chars=500, redactor=Redactor(("password",)))
    with engine.connect() as connection:
        connection.execute(text(f"SELECT sleep_ms(30) WHERE 'x' <> 'password = {SECRET}'"))
    (slow,) = log_lines.events("slow_query")
    assert SECRET not in slow["statement"]
    assert "[REDACTED]" in slow["statement"]
