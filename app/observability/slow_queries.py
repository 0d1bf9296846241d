"""SQL timing: a duration histogram by operation and a `slow_query` record above a threshold.

Each statement is timed around the driver's execute (observability.statement_hooks), a failing one
too. Statements are cut to a bounded length and parameters are never logged, only how many rows a
batch held (executemany batches can hold thousands).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.engine import Engine

from observability.metrics import DB_QUERY_DURATION, DB_SLOW_QUERIES, LabelCache
from observability.redaction import Redactor
from observability.statement_hooks import Execute, add_statement_hook

_logger = logging.getLogger("observability.slow_queries")
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

    def timed(execute: Execute, executemany: bool) -> Execute:
        def timed_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
            started, failed = time.perf_counter(), True
            try:
                execute(cursor, statement, parameters, context)
                failed = False
            finally:
                finished(statement, started, _row_count(parameters, executemany), failed)

        return timed_execute

    add_statement_hook(engine, timed)
