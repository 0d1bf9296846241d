"""Degraded dependencies: one warning per interval, a short circuit on Redis failures, and library
failure records (the trace exporter's) throttled the same way."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pytest

from observability.degraded import GuardedRedis, ThrottledLogFilter, ThrottledWarning, throttle_logger


def _records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


def test_one_warning_per_interval_per_part_with_the_count_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    warnings = ThrottledWarning(logging.getLogger("test.degraded"), interval_seconds=0.2)
    for _ in range(50):
        warnings.warn("redis", "redis unavailable", ConnectionError())
        warnings.warn("broker", "broker unavailable", ConnectionError())
    time.sleep(0.25)
    warnings.warn("redis", "redis unavailable", ConnectionError())
    records = _records(caplog, "test.degraded")
    assert [(r.dependency, r.suppressed_since_last) for r in records] == [  # type: ignore[attr-defined]
        ("redis", 0), ("broker", 0), ("redis", 49)]


def test_a_failing_redis_opens_a_short_circuit(dead_redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    warnings = ThrottledWarning(logging.getLogger("test.degraded"), interval_seconds=60)
    guarded = GuardedRedis(dead_redis_url, warnings)
    calls: list[int] = []

    def ping(client: Any) -> bool:
        calls.append(1)
        return bool(client.ping())

    assert [guarded.run("ping", ping) for _ in range(20)] == [None] * 20
    assert len(calls) == 1  # the first failed; the others skipped Redis while the circuit was open
    assert len(_records(caplog, "test.degraded")) == 1


def _exporter_like_records(logger: logging.Logger, batches: int) -> None:
    """What the OTLP exporter logs per failed batch: retries as warnings, then an error."""
    for _ in range(batches):
        for delay in (1.0, 2.0, 4.0):
            logger.warning("Transient error %s encountered while exporting %s batch, retrying in %.2fs.",
                           "ConnectionError", "span", delay)
        logger.error("Failed to export %s batch due to timeout, max retries or shutdown.", "span")
        logger.info("an info record passes untouched")


def test_library_failure_records_pass_once_per_interval_per_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("test.degraded.exporter")
    throttle = ThrottledLogFilter(interval_seconds=0.3)
    logger.addFilter(throttle)
    try:
        _exporter_like_records(logger, batches=10)
        time.sleep(0.35)
        _exporter_like_records(logger, batches=1)
    finally:
        logger.removeFilter(throttle)
    records = _records(caplog, logger.name)
    failures = [(r.levelname, r.suppressed_since_last) for r in records if r.levelno >= logging.WARNING]  # type: ignore[attr-defined]
    # 44 failure records without the filter; per interval one warning and one error get through.
    assert failures == [("WARNING", 0), ("ERROR", 0), ("WARNING", 29), ("ERROR", 9)]
    assert sum(r.levelno == logging.INFO for r in records) == 11


def test_throttle_logger_installs_one_filter_however_often_it_is_called() -> None:
    name = "test.degraded.once"
    first = throttle_logger(name, 60)
    assert throttle_logger(name, 60) is first
    assert logging.getLogger(name).filters == [first]
    logging.getLogger(name).removeFilter(first)


def test_a_forked_child_gets_a_pool_of_its_own_even_while_the_parents_lock_is_held(dead_redis_url) -> None:
    guarded = GuardedRedis(dead_redis_url, ThrottledWarning(logging.getLogger("test"), 60))
    inherited = guarded.client
    with inherited.connection_pool._lock:  # as a scrape in gunicorn's master holds it while a worker forks
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 only with a new client whose pool's lock is free
            fresh = guarded.client is not inherited and guarded.client.connection_pool._lock.acquire(timeout=1)
            os._exit(0 if fresh else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert guarded.client is inherited  # the parent keeps its own
