"""Error aggregation in Redis: what an unhandled exception is (`ErrorReport`, its fingerprint) and
how often each one happened recently (`ErrorAggregator`).

One Redis hash per minute (fingerprint -> count) lives for the length of the window, so the top-N
view is a sliding window with minute resolution and nothing needs cleaning up.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from observability.degraded import GuardedRedis
from observability.redaction import Redactor

_BUCKET_SECONDS = 60
_MESSAGE_MAX = 200
_VOLATILE = re.compile(
    r"0x[0-9a-f]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{16,}\b"
    r"|'[^']*'|\"[^\"]*\"|\d+(?:\.\d+)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ErrorReport:
    fingerprint: str
    error_type: str
    message: str  # normalised and scrubbed: safe to show and to send
    frame: str

    @classmethod
    def of(cls, error: BaseException, redactor: Redactor) -> ErrorReport:
        error_type = type(error).__qualname__
        message = _VOLATILE.sub("<?>", redactor.text(str(error)))[:_MESSAGE_MAX]
        frame = _top_frame(error)
        digest = hashlib.sha1(f"{error_type}|{message}|{frame}".encode(), usedforsecurity=False)
        return cls(digest.hexdigest()[:16], error_type, message, frame)


def _top_frame(error: BaseException) -> str:
    tb = error.__traceback__
    if tb is None:
        return "<unknown>"
    while tb.tb_next is not None:  # the innermost frame, without reading source lines from disk
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"


class ErrorAggregator:
    def __init__(self, redis: GuardedRedis, key_prefix: str, window_seconds: int) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}:errors"
        self.window_seconds = window_seconds

    def record(self, report: ErrorReport, now: float | None = None) -> None:
        now = time.time() if now is None else now
        bucket = f"{self._prefix}:{int(now // _BUCKET_SECONDS)}"
        details = f"{self._prefix}:detail:{report.fingerprint}"

        def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.hincrby(bucket, report.fingerprint, 1)
            pipe.expire(bucket, self.window_seconds + _BUCKET_SECONDS)
            pipe.hsetnx(details, "first_seen", now)
            pipe.hset(details, mapping={"type": report.error_type, "message": report.message,
                                        "frame": report.frame, "last_seen": now})
            pipe.expire(details, self.window_seconds + _BUCKET_SECONDS)
            pipe.execute()

        self._redis.run("error aggregation", write)

    def top(self, limit: int = 10, now: float | None = None) -> list[dict[str, Any]] | None:
        """The most frequent errors within the window, or None while Redis is unavailable."""
        now = time.time() if now is None else now
        newest = int(now // _BUCKET_SECONDS)
        oldest = int((now - self.window_seconds) // _BUCKET_SECONDS) + 1

        def read(r: Any) -> list[dict[str, Any]]:
            pipe = r.pipeline(transaction=False)
            for bucket in range(oldest, newest + 1):
                pipe.hgetall(f"{self._prefix}:{bucket}")
            counts: dict[str, int] = {}
            for per_bucket in pipe.execute():
                for fingerprint, count in per_bucket.items():
                    counts[fingerprint] = counts.get(fingerprint, 0) + int(count)
            ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)[:limit]
            pipe = r.pipeline(transaction=False)
            for fingerprint, _ in ranked:
                pipe.hgetall(f"{self._prefix}:detail:{fingerprint}")
            details = pipe.execute()
            return [{"fingerprint": fingerprint, "count": count, **detail}
                    for (fingerprint, count), detail in zip(ranked, details, strict=True)]

        return self._redis.run("error top-N", read)
