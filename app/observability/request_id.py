"""Request IDs and the per-request context every log record reads.

An inbound `X-Request-ID` is kept only if it is short and made of safe characters; anything else
(newlines, JSON, 10 KB, non-ASCII) is replaced by a generated id, so a client can neither forge log
content nor break the response header. The id is echoed in the response, set as a span attribute,
and travels to Celery tasks in a message header.
"""

from __future__ import annotations

import re
import secrets
import time

from flask import Flask, Response, g, request

from observability import context

HEADER = "X-Request-ID"
SPAN_ATTRIBUTE = "request.id"
TASK_HEADER = "request_id"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{7,127}")
_MAX_USER_AGENT = 512


def accept_or_generate(inbound: str | None) -> str:
    if inbound and _SAFE_ID.fullmatch(inbound):
        return inbound
    return secrets.token_hex(16)


def init_request_id(app: Flask, tracing_enabled: bool) -> None:
    if tracing_enabled:
        from opentelemetry.trace import get_current_span  # noqa: PLC0415 - tracing is optional
    else:
        get_current_span = None

    def open_context() -> None:
        headers = request.headers
        ctx = context.RequestContext(
            accept_or_generate(headers.get(HEADER)),
            method=request.method,
            path=request.path,
            ip=request.remote_addr,
            user_agent=headers.get("User-Agent", "")[:_MAX_USER_AGENT],
        )
        ctx.started = time.perf_counter()
        g._observability_context_token = context.activate(ctx)

    def echo(response: Response) -> Response:
        ctx = context.current()
        if ctx is not None:
            response.headers[HEADER] = ctx.request_id
            # Here, not in open_context: the Flask instrumentation's span starts in a later hook.
            if get_current_span is not None:
                get_current_span().set_attribute(SPAN_ATTRIBUTE, ctx.request_id)
        return response

    def close_context(_error: BaseException | None) -> None:
        token = g.pop("_observability_context_token", None)
        if token is not None:
            context.deactivate(token)

    # First before_request and last after_request: every other hook sees the context.
    app.before_request_funcs.setdefault(None, []).insert(0, open_context)
    app.after_request_funcs.setdefault(None, []).insert(0, echo)
    app.teardown_request(close_context)


def _add_request_id_header(headers: dict[str, object] | None = None, **_: object) -> None:
    request_id = context.current_request_id()
    if request_id is not None and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def propagate_to_tasks() -> None:
    """Queued Celery tasks carry the current request id in a message header."""
    from celery.signals import before_task_publish  # noqa: PLC0415 - Celery is optional here

    before_task_publish.connect(_add_request_id_header, weak=False, dispatch_uid="observability.request_id")
