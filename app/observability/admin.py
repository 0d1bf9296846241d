"""Admin endpoints: a bearer token compared in constant time; none configured means none exposed."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, request

F = TypeVar("F", bound=Callable[..., Any])


def require_admin_token(token: str) -> Callable[[F], F]:
    expected = token.encode()

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not expected:
                abort(404)  # admin endpoints are off until a token is configured
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), expected):
                abort(401)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
