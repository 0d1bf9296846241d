"""Request IDs, the per-request context every log record reads, and the hooks that carry them.

An inbound `X-Request-ID` is kept only if it is short and made of safe characters; anything else
(newlines, JSON, 10 KB, non-ASCII) is replaced by a generated id, so a client can neither forge log
content nor break the response header. The id is echoed in the response and set as a span
attribute; `observability.task_request_id` carries it into Celery tasks.

The concerns that watch every request (access log, metrics) attach plain callables to one
`RequestHooks` instead of registering Flask hooks of their own: Flask checks each hook for a
coroutine on every call, which cost more than the work of several of them.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response, request

from observability import context
from observability.context import RequestContext

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

    from observability.server_spans import ServerSpans

HEADER = "X-Request-ID"
_HEADER_LOWER = HEADER.lower()
SPAN_ATTRIBUTE = "request.id"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{7,127}")
_MAX_USER_AGENT = 512
_NOT_GIVEN: Any = object()  # Flask's own default for a teardown's error: the one being handled

StartHook = Callable[[RequestContext], None]
ResponseHook = Callable[[RequestContext, Request, Response], None]
EndHook = Callable[[RequestContext], None]


def accept_or_generate(inbound: str | None) -> str:
    if inbound and _SAFE_ID.fullmatch(inbound):
        return inbound
    # 128 random bits from the OS, as `secrets.token_hex(16)` draws them, without its two Python calls.
    return os.urandom(16).hex()


class RequestHooks:
    """What runs around every request, in order: `on_start` once the context is open, `on_response`
    when the response is ready (Flask's last after-request step), `on_end` at teardown, even when
    the request failed; the context closes after them.

    The extension point for per-request work of your own: append plain callables to the lists of
    `obs.request_hooks` (`on_start(ctx)`, `on_response(ctx, request, response)`, `on_end(ctx)`;
    `ctx` is the `RequestContext` every log record reads). A hook must not raise.
    """

    def __init__(self) -> None:
        self.on_start: list[StartHook] = []
        self.on_response: list[ResponseHook] = []
        self.on_end: list[EndHook] = []


def init_request_id(app: Flask, tracing_enabled: bool, server_spans: ServerSpans | None = None) -> RequestHooks:
    """Opens the request context first and closes it last; returns the hooks other concerns extend.

    With `server_spans` the request's server span opens and closes with the context; else, with
    tracing on, the upstream Flask instrumentation's span gets the request id.
    """
    hooks = RequestHooks()
    set_span_attribute = _span_attribute_setter() if tracing_enabled and server_spans is None else None
    current_request: Callable[[], Request] = request._get_current_object  # one proxy lookup per hook

    def open_context() -> None:
        req = current_request()
        environ = req.environ
        # Positional: a class called with keywords gets them as a dict, built anew on every request.
        ctx = RequestContext(accept_or_generate(environ.get("HTTP_X_REQUEST_ID")), req.method, req.path,
                             req.remote_addr, environ.get("HTTP_USER_AGENT", "")[:_MAX_USER_AGENT])
        ctx.started = time.perf_counter()
        ctx.token = context.activate(ctx)
        if server_spans is not None:
            server_spans.start(ctx, req)
        for hook in hooks.on_start:
            hook(ctx)

    def finish_response(response: Response) -> Response:
        ctx = context.current()
        if ctx is None:
            return response
        _echo(response.headers, ctx.request_id)
        # The upstream Flask instrumentation's span starts after open_context: its request id goes here.
        if server_spans is not None:
            server_spans.finish(ctx, response)
        elif set_span_attribute is not None:
            set_span_attribute(ctx.request_id)
        req = current_request()
        for hook in hooks.on_response:
            hook(ctx, req, response)
        return response

    def close_context(error: BaseException | None) -> None:
        ctx = context.current()
        if ctx is None or ctx.token is None:
            return
        try:
            for hook in hooks.on_end:
                hook(ctx)
        finally:
            if server_spans is not None:
                server_spans.end(ctx, error)
            context.deactivate(ctx.token)

    _around_flask_hooks(app, open_context, finish_response, close_context)
    return hooks


def _around_flask_hooks(app: Flask, before: Callable[[], None], after: Callable[[Response], Response],
                         teardown: Callable[[BaseException | None], None]) -> None:
    """Runs `before` ahead of every before-request hook, `after` behind every after-request hook and
    `teardown` behind every teardown hook (the tracing instrumentation's included), by wrapping the
    app's methods that run Flask's hook lists. Registered as hooks instead, each would pay Flask's
    per-call coroutine check, five calls deep in `inspect`, on every request."""
    preprocess_request, process_response = app.preprocess_request, app.process_response
    do_teardown_request = app.do_teardown_request

    def preprocess_request_after_before() -> Response | None:
        before()
        return preprocess_request()

    def process_response_then_after(response: Response) -> Response:
        return after(process_response(response))

    def do_teardown_request_then_teardown(exc: BaseException | None = _NOT_GIVEN) -> None:
        if exc is _NOT_GIVEN:
            exc = sys.exc_info()[1]
        try:
            do_teardown_request(exc)
        finally:
            teardown(exc)

    app.preprocess_request = preprocess_request_after_before  # type: ignore[method-assign]
    app.process_response = process_response_then_after  # type: ignore[method-assign]
    app.do_teardown_request = do_teardown_request_then_teardown  # type: ignore[method-assign]


def _echo(headers: Headers, request_id: str) -> None:
    """`headers[HEADER] = request_id` at a third of its cost: the id needs none of werkzeug's checks
    of a value (it was generated or accepted as safe characters), and a response rarely has the header
    already (when it has, it is replaced as `headers.set` replaces it)."""
    pairs = getattr(headers, "_list", None)
    if type(pairs) is list:
        for name, _ in pairs:
            if name.lower() == _HEADER_LOWER:
                break
        else:
            pairs.append((HEADER, request_id))
            return
    headers[HEADER] = request_id


def _span_attribute_setter() -> Callable[[str], Any]:
    from opentelemetry.trace import get_current_span  # noqa: PLC0415 - tracing is optional

    def set_request_id(request_id: str) -> None:
        get_current_span().set_attribute(SPAN_ATTRIBUTE, request_id)

    return set_request_id
