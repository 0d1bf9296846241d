"""Error capture: JSON error bodies, one `unhandled_exception` record, aggregation and alerting.

HTTP errors (404, 405, 413, ...) keep their status, are answered as JSON and never alert: they are
the client's doing. Anything else is logged once with its traceback, counted by type, aggregated in
Redis by fingerprint and handed to the notifier, and the client gets a 500 carrying its request id.

Aggregation keeps one Redis hash per minute (fingerprint -> count) for the length of the window,
so the top-N view is a sliding window with minute resolution and nothing needs cleaning up.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from observability import context
from observability.admin import require_admin_token
from observability.degraded import GuardedRedis
from observability.logging import ERRORS_LOGGER
from observability.metrics import APP_ERRORS
from observability.redaction import Redactor

_logger = logging.getLogger(ERRORS_LOGGER)
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


def error_body(status: int, name: str, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "name": name, "message": message},
            "request_id": context.current_request_id()}


def json_error(status: int, name: str, message: str, base: Response | None = None) -> Response:
    response = base if base is not None else Response()
    response.set_data(orjson.dumps(error_body(status, name, message)))
    response.status_code = status
    response.mimetype = "application/json"
    return response


def init_error_capture(
    app: Flask,
    aggregator: ErrorAggregator,
    redactor: Redactor,
    on_unhandled: Callable[[ErrorReport, BaseException], None],
) -> None:
    def handle_http_error(error: HTTPException) -> Any:
        if error.code is None or error.code < 400:
            return error  # routing redirects pass through untouched
        # get_response() keeps headers such as Allow (405) and Retry-After (503).
        return json_error(error.code, error.name, error.description or error.name, error.get_response())

    def handle_unhandled(error: Exception) -> Response:
        try:
            report = ErrorReport.of(error, redactor)
        except Exception:
            report = ErrorReport("unreportable", type(error).__qualname__, "<unprintable>", "<unknown>")
        _logger.error("unhandled exception", exc_info=error, extra={
            "event": "unhandled_exception", "fingerprint": report.fingerprint,
            "endpoint": request.url_rule.rule if request.url_rule is not None else None,
        })
        APP_ERRORS.labels(report.error_type).inc()
        aggregator.record(report)
        try:
            on_unhandled(report, error)
        except Exception as failure:
            _logger.warning("alert for an unhandled exception failed", extra={
                "event": "alert_failed", "error_type": type(failure).__name__})
        return json_error(500, "Internal Server Error", "internal error; quote the request_id when reporting it")

    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unhandled)


def admin_blueprint(aggregator: ErrorAggregator, admin_token: str) -> Blueprint:
    blueprint = Blueprint("observability_admin", __name__, url_prefix="/admin")

    @blueprint.get("/errors")
    @require_admin_token(admin_token)
    def top_errors() -> Any:
        raw_limit = request.args.get("limit", "10")
        # ASCII digits only: str.isdigit() accepts '²', which int() refuses (a 500).
        if not re.fullmatch(r"[0-9]{1,3}", raw_limit) or not 1 <= int(raw_limit) <= 100:
            return json_error(400, "Bad Request", "limit must be an integer from 1 to 100")
        top = aggregator.top(int(raw_limit))
        if top is None:
            return json_error(503, "Service Unavailable", "error aggregation store unavailable")
        return jsonify({"window_seconds": aggregator.window_seconds, "errors": top})

    return blueprint
