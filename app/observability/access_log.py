"""One access record per request (`event: api_access`) and the `X-Response-Time` header.

The request context (method, path, ip, user agent, request and user ids) is already on every record
of the request; the access record adds status, duration and the route template. Probe paths are
left out by configuration so health checks do not drown real traffic.
"""

from __future__ import annotations

import logging
import time

from flask import Request, Response

from observability.context import RequestContext
from observability.logging import ACCESS_LOGGER, log_fast
from observability.request_id import RequestHooks

_logger = logging.getLogger(ACCESS_LOGGER)


def init_access_log(hooks: RequestHooks, excluded_paths: tuple[str, ...]) -> None:
    excluded = frozenset(excluded_paths)

    def log_access(ctx: RequestContext, req: Request, response: Response) -> None:
        duration_ms = round((time.perf_counter() - ctx.started) * 1000.0, 3)
        # This module's own header: appended, where `headers[...] =` would first scan for an old one.
        response.headers.add("X-Response-Time", f"{duration_ms}ms")
        if ctx.path in excluded or not _logger.isEnabledFor(logging.INFO):
            return
        rule = req.url_rule
        log_fast(_logger, logging.INFO, "api_access", {
            "event": "api_access",
            "status_code": response.status_code,
            "duration_ms": duration_ms,
            "endpoint": rule.rule if rule is not None else None,
            "response_bytes": response.content_length,
        })

    hooks.on_response.append(log_access)
