"""Who is calling: `user_id` on log records and the `active_users` gauge.

`bind_user()` puts the user on the current request's context and notes the user as active in a
Redis sorted set (at most once per user per half minute per process, so the request path rarely
touches Redis). The gauge is computed at scrape time from that set, so it is right across every
worker and process without any of them keeping state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from observability import context
from observability.degraded import GuardedRedis
from observability.metrics import ACTIVE_USERS_NAME

_RECORD_EVERY_SECONDS = 30.0


class ActiveUsers(Collector):
    def __init__(self, redis: GuardedRedis, key_prefix: str, window_seconds: int) -> None:
        self._redis = redis
        self._key = f"{key_prefix}:active_users"
        self._window = window_seconds
        self._last_recorded: dict[str, float] = {}

    def bind_user(self, user_id: str) -> None:
        ctx = context.current()
        if ctx is not None:
            ctx.user_id = user_id
        now = time.time()
        if now - self._last_recorded.get(user_id, 0.0) < _RECORD_EVERY_SECONDS:
            return
        self._last_recorded[user_id] = now
        if len(self._last_recorded) > 10_000:  # bounded memory whatever the number of users
            self._last_recorded.clear()
        self._redis.run("active user tracking", lambda r: r.zadd(self._key, {user_id: now}))

    def count(self) -> int | None:
        def count_recent(r: object) -> int:
            pipe = r.pipeline(transaction=False)  # type: ignore[attr-defined]
            pipe.zremrangebyscore(self._key, "-inf", time.time() - self._window)
            pipe.zcard(self._key)
            return int(pipe.execute()[1])

        return self._redis.run("active user count", count_recent)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = self.count()
        if count is not None:  # no sample rather than a wrong zero while Redis is down
            yield GaugeMetricFamily(ACTIVE_USERS_NAME, "Users seen within the activity window.", value=count)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
