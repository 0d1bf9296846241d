"""One access record per request (`event: api_access`) and the `X-Response-Time` header.

The request context (method, path, ip, user agent, request and user ids) is already on every record
of the request; the access record adds status, duration and the route template. Probe paths are
left out by configuration so health checks do not drown real traffic.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, request

from observability import context
from observability.logging import ACCESS_LOGGER

_logger = logging.getLogger(ACCESS_LOGGER)


def init_access_log(app: Flask, excluded_paths: tuple[str, ...]) -> None:
    excluded = frozenset(excluded_paths)

    def log_access(response: Response) -> Response:
        ctx = context.current()
        if ctx is None:
            return response
        duration_ms = round((time.perf_counter() - ctx.started) * 1000.0, 3)
        response.headers["X-Response-Time"] = f"{duration_ms}ms"
        if ctx.path not in excluded:
            rule = request.url_rule
            _logger.info("api_access", extra={
                "event": "api_access",
                "status_code": response.status_code,
                "duration_ms": duration_ms,
                "endpoint": rule.rule if rule is not None else None,
                "response_bytes": response.content_length,
            })
        return response

    app.after_request(log_access)
