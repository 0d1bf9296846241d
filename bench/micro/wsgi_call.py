"""A WSGI request without a server: the environ is built once by werkzeug, the app called directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from bench.load import USER_AGENT


def _start_response(_status: str, _headers: list[tuple[str, str]], _exc_info: Any = None) -> Callable[[bytes], Any]:
    return lambda _data: None


def request_call(app: Flask, path: str = "/trivial") -> Callable[[], int]:
    """A callable that sends one GET `path` through `app.wsgi_app` and reads the whole body.

    Read `app.wsgi_app` after instrumenting: OpenTelemetry's Flask instrumentation replaces it.
    """
    builder = EnvironBuilder(path=path, headers={"User-Agent": USER_AGENT},
                             environ_base={"REMOTE_ADDR": "127.0.0.1"})
    environ = builder.get_environ()
    builder.close()
    wsgi_app = app.wsgi_app

    def call() -> int:
        # A shallow copy per call: middleware stores per-request keys in the environ.
        body = wsgi_app(dict(environ), _start_response)
        try:
            return sum(len(chunk) for chunk in body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return call
