"""Fault-injection knobs for the sandbox: error rate, added latency, AI failure rate, slow query.

Knobs live in Redis so every worker process sees the same values; each process re-reads them at
most once per refresh interval, so the request path almost never waits on Redis for them. If Redis
is down the last known knobs stay in force.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from observability.degraded import GuardedRedis


class ChaosError(RuntimeError):
    """Raised on purpose by the error-rate knob."""


@dataclass(frozen=True)
class ChaosKnobs:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    ai_failure_rate: float = -1.0  # below zero: the provider's own setting applies
    slow_query_ms: float = 0.0

    @classmethod
    def parse(cls, payload: Any) -> ChaosKnobs:
        """Validated knobs from a JSON object; raises ValueError with a message for the client."""
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ValueError(f"unknown knobs: {', '.join(unknown)}")
        values = {}
        for name, value in payload.items():
            values[name] = _finite_number(name, value)
        knobs = cls(**values)
        for rate in ("error_rate", "ai_failure_rate"):
            if getattr(knobs, rate) > 1.0 or (rate == "error_rate" and knobs.error_rate < 0):
                raise ValueError(f"{rate} must be between 0 and 1")
        if not 0 <= knobs.latency_ms <= 30_000 or not 0 <= knobs.slow_query_ms <= 30_000:
            raise ValueError("latency_ms and slow_query_ms must be between 0 and 30000")
        return knobs

    def provider_failure_rate(self) -> float | None:
        return None if self.ai_failure_rate < 0 else self.ai_failure_rate


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    try:
        number = float(value)  # an integer of 400 digits overflows here
    except OverflowError:
        raise ValueError(f"{name} is out of range") from None
    if not math.isfinite(number):  # NaN compares false with every bound: it would pass them all
        raise ValueError(f"{name} must be a finite number")
    return number


class Chaos:
    def __init__(self, redis: GuardedRedis, key: str, refresh_seconds: float) -> None:
        self._redis = redis
        self._key = key
        self._refresh = refresh_seconds
        self._knobs = ChaosKnobs()
        self._read_at = float("-inf")

    def knobs(self) -> ChaosKnobs:
        now = time.monotonic()
        if now - self._read_at >= self._refresh:
            self._read_at = now
            stored = self._redis.run("chaos knobs", lambda r: r.hgetall(self._key))
            if stored is not None:
                self._knobs = ChaosKnobs(**{k: float(v) for k, v in stored.items()
                                            if k in ChaosKnobs.__dataclass_fields__})
        return self._knobs

    def store(self, knobs: ChaosKnobs) -> bool:
        def write(r: Any) -> bool:
            pipe = r.pipeline()
            pipe.delete(self._key)
            pipe.hset(self._key, mapping=asdict(knobs))
            pipe.execute()
            return True

        stored = self._redis.run("chaos knobs", write)
        if stored:
            self._knobs, self._read_at = knobs, time.monotonic()
        return bool(stored)

    def disturb_request(self) -> None:
        """Applies the latency and error-rate knobs to the current API request."""
        knobs = self.knobs()
        if knobs.latency_ms > 0:
            time.sleep(knobs.latency_ms / 1000.0)
        if knobs.error_rate > 0 and random.random() < knobs.error_rate:  # noqa: S311 - fault injection
            raise ChaosError("injected failure (chaos error_rate)")
