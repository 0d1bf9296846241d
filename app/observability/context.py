"""What the current request or task is, for every log record written while it runs.

One `ContextVar` holds one small object per request (or Celery task), so the log formatter reads
it with a single lookup instead of touching Flask's globals.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any


class RequestContext:
    __slots__ = (
        "ip", "method", "path", "request_id", "span", "span_token", "started", "task_id", "task_name", "token",
        "user_agent", "user_id",
    )

    def __init__(
        self,
        request_id: str,
        method: str | None = None,
        path: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        *,
        task_id: str | None = None,
        task_name: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.ip = ip
        self.user_agent = user_agent
        self.user_id: str | None = None
        self.task_id = task_id
        self.task_name = task_name
        self.started = 0.0  # perf_counter() when the request or task began
        self.token: Token[RequestContext | None] | None = None  # resets the variable when it ends
        # The request's server span and the token that detaches it (observability.server_spans).
        self.span: Any = None
        self.span_token: Any = None

    def log_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {"request_id": self.request_id}
        if self.method is not None:
            fields["request"] = {
                "method": self.method,
                "path": self.path,
                "ip": self.ip,
                "user_agent": self.user_agent,
            }
        if self.user_id is not None:
            fields["user_id"] = self.user_id
        if self.task_id is not None:
            fields["task"] = {"id": self.task_id, "name": self.task_name}
        return fields


_current: ContextVar[RequestContext | None] = ContextVar("observability_request", default=None)


# The variable's own methods, not wrappers: they run on every request and every log record, and a
# bound built-in costs no Python frame.
current: Callable[[], RequestContext | None] = _current.get
activate: Callable[[RequestContext], Token[RequestContext | None]] = _current.set
deactivate: Callable[[Token[RequestContext | None]], None] = _current.reset


def current_request_id() -> str | None:
    ctx = _current.get()
    return ctx.request_id if ctx is not None else None
