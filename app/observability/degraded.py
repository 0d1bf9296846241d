"""Optional dependencies that may fail without hurting requests.

`GuardedRedis` runs Redis calls for the instrumentation (error aggregation, alert dedupe, active
users). A failure opens a short circuit so the following requests skip Redis instead of each waiting
for a timeout, and `ThrottledWarning` logs one warning per interval, with the number suppressed,
instead of one per request. `ThrottledLogFilter` does the same to a library's own failure records
(the trace exporter logs several per failed batch while its collector is down).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")
_CIRCUIT_OPEN_SECONDS = 2.0


class ThrottledWarning:
    def __init__(self, logger: logging.Logger, interval_seconds: float) -> None:
        self._logger = logger
        self._interval = interval_seconds
        self._next_at: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, part: str, message: str, error: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_at.get(part, 0.0):
                self._suppressed[part] = self._suppressed.get(part, 0) + 1
                return
            self._next_at[part] = now + self._interval
            suppressed = self._suppressed.pop(part, 0)
        self._logger.warning(message, extra={
            "event": "dependency_degraded", "dependency": part,
            "error_type": type(error).__name__, "suppressed_since_last": suppressed,
        })


class ThrottledLogFilter(logging.Filter):
    """Lets one record per interval through for each (logger, level, message template) at WARNING or
    above; the next one let through carries `suppressed_since_last`. Lower levels pass untouched."""

    def __init__(self, interval_seconds: float) -> None:
        super().__init__()
        self._interval = interval_seconds
        self._next_at: dict[tuple[str, int, str], float] = {}
        self._suppressed: dict[tuple[str, int, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            if now < self._next_at.get(key, 0.0):
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._next_at[key] = now + self._interval
            record.suppressed_since_last = self._suppressed.pop(key, 0)
        return True


def throttle_logger(name: str, interval_seconds: float) -> ThrottledLogFilter:
    """Installs one `ThrottledLogFilter` on the logger `name` (again: the one installed is kept)."""
    logger = logging.getLogger(name)
    for existing in logger.filters:
        if isinstance(existing, ThrottledLogFilter):
            return existing
    throttle = ThrottledLogFilter(interval_seconds)
    logger.addFilter(throttle)
    return throttle


class GuardedRedis:
    def __init__(self, url: str, warnings: ThrottledWarning, timeout_seconds: float = 0.5) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False, health_check_interval=30, decode_responses=True,
        )
        self._warnings = warnings
        self._closed_until = 0.0

    def run(self, purpose: str, call: Callable[[redis.Redis], T]) -> T | None:
        """`call(client)`, or None when Redis is failing (then logged, throttled)."""
        if time.monotonic() < self._closed_until:
            return None
        try:
            return call(self.client)
        except redis.RedisError as error:
            self._closed_until = time.monotonic() + _CIRCUIT_OPEN_SECONDS
            self._warnings.warn("redis", f"redis unavailable, {purpose} skipped", error)
            return None
