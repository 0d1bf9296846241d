"""Error capture: JSON error bodies, one `unhandled_exception` record, aggregation and alerting.

HTTP errors (404, 405, 413, ...) keep their status, are answered as JSON and never alert: they are
the client's doing. Anything else is logged once with its traceback, counted by type, aggregated in
Redis by fingerprint (`observability.error_aggregation`) and handed to the notifier, and the client
gets a 500 carrying its request id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from observability import context
from observability.admin import require_admin_token
from observability.error_aggregation import ErrorAggregator, ErrorReport
from observability.logging import ERRORS_LOGGER
from observability.metrics import APP_ERRORS
from observability.redaction import Redactor

_logger = logging.getLogger(ERRORS_LOGGER)


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
