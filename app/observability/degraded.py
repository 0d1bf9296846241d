"""Optional dependencies that may fail without hurting requests.

`GuardedRedis` runs Redis calls for the instrumentation (error aggregation, alert dedupe, active
users). A failure opens a short circuit so the following requests skip Redis instead of each waiting
for a timeout, and `ThrottledWarning` logs one warning per interval, with the number suppressed,
instead of one per request. `ThrottledLogFilter` applies the same `Throttle` to a library's own
failure records (the trace exporter logs several per failed batch while its collector is down).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

import redis

from observability import process

T = TypeVar("T")
_CIRCUIT_OPEN_SECONDS = 2.0


class Throttle:
    """At most one event per key per interval; the one let through learns how many were held back."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._next_at: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> int | None:
        """None when `key` is held back (and counted); else how many were held back since the last."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_at.get(key, 0.0):
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._next_at[key] = now + self._interval
            return self._suppressed.pop(key, 0)


class ThrottledWarning:
    """One `dependency_degraded` warning per interval for each failing part."""

    def __init__(self, logger: logging.Logger, interval_seconds: float) -> None:
        self._logger = logger
        self._throttle = Throttle(interval_seconds)

    def warn(self, part: str, message: str, error: BaseException) -> None:
        suppressed = self._throttle.admit(part)
        if suppressed is None:
            return
        self._logger.warning(message, extra={
            "event": "dependency_degraded", "dependency": part,
            "error_type": type(error).__name__, "suppressed_since_last": suppressed,
        })


class ThrottledLogFilter(logging.Filter):
    """Lets one record per interval through for each (logger, level, message template) at WARNING or
    above; the next one let through carries `suppressed_since_last`. Lower levels pass untouched."""

    def __init__(self, interval_seconds: float) -> None:
        super().__init__()
        self._throttle = Throttle(interval_seconds)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        suppressed = self._throttle.admit((record.name, record.levelno, str(record.msg)))
        if suppressed is None:
            return False
        record.suppressed_since_last = suppressed
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
        self._url, self._timeout = url, timeout_seconds
        self.client = self._new_client()
        self._warnings = warnings
        self._closed_until = 0.0
        # A forked child gets a pool of its own. It would inherit the parent's pool with its lock as it
        # was at the fork: held, when gunicorn's master was counting active users for a scrape, and
        # redis-py's own reset after a fork waits for that lock forever.
        process.in_each_forked_child(self._renew)

    def _new_client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
            retry_on_timeout=False, health_check_interval=30, decode_responses=True,
        )

    def _renew(self) -> None:
        self.client = self._new_client()

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
