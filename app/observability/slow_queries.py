"""SQL timing: a duration histogram by operation and a `slow_query` record above a threshold.

The start time lives on the statement's execution context, not on the connection: a statement
that fails never reaches `after_cursor_execute`, so connection-level stacks leak and mis-pair.
Failures are timed through `handle_error`. Statements are cut to a bounded length and parameters
are never logged, only how many there were (executemany batches can hold thousands of rows).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from observability.metrics import DB_QUERY_DURATION, DB_SLOW_QUERIES, LabelCache
from observability.redaction import Redactor

_logger = logging.getLogger("observability.slow_queries")
_STARTED = "_observability_started"
_OPERATIONS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK"})


def operation_of(statement: str) -> str:
    head = statement[:24].split(None, 1)
    word = head[0].upper() if head else ""
    return word if word in _OPERATIONS else "OTHER"


def _row_count(parameters: Any, executemany: bool) -> int:
    if executemany and isinstance(parameters, (list, tuple)):
        return len(parameters)
    return 1


def watch_engine(engine: Engine, threshold_ms: float, statement_max_chars: int,
                 redactor: Redactor | None = None) -> None:
    """Times every statement; `redactor` hides `password = '...'`-style literals in logged statements."""
    threshold = threshold_ms / 1000.0
    scrub = redactor.text if redactor is not None else str
    durations = LabelCache(DB_QUERY_DURATION)
    slow_counts = LabelCache(DB_SLOW_QUERIES)

    def finished(statement: str, started: float, rows: int, failed: bool) -> None:
        elapsed = time.perf_counter() - started
        operation = operation_of(statement)
        durations.get(operation).observe(elapsed)
        if elapsed < threshold:
            return
        slow_counts.get(operation).inc()
        _logger.warning("slow query", extra={
            "event": "slow_query",
            "duration_ms": round(elapsed * 1000.0, 3),
            "threshold_ms": threshold_ms,
            "operation": operation,
            "statement": scrub(statement[:statement_max_chars]),
            "statement_truncated": len(statement) > statement_max_chars,
            "rows_in_batch": rows,
            "outcome": "error" if failed else "ok",
        })

    @event.listens_for(engine, "before_cursor_execute")
    def start(_conn: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any,
              _executemany: bool) -> None:
        if context is not None:
            setattr(context, _STARTED, time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def stop(_conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        started = context.__dict__.pop(_STARTED, None) if context is not None else None
        if started is not None:
            finished(statement, started, _row_count(parameters, executemany), failed=False)

    @event.listens_for(engine, "handle_error")
    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context  # None when the failure precedes execution
        started = context.__dict__.pop(_STARTED, None) if context is not None else None
        if started is not None and exception_context.statement is not None:
            finished(exception_context.statement, started, 1, failed=True)
