"""Admin endpoints: a bearer token compared in constant time; none configured means none exposed.

`hmac.compare_digest` is constant-time only for inputs of equal length: given a shorter or longer
value it may answer sooner, which tells a caller the token's length. So both sides are hashed first
(SHA-256, always 32 bytes) and every request pays for exactly one comparison of two digests, whatever
it presented: no header, another scheme, an empty token or a token of the wrong length.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

F = TypeVar("F", bound=Callable[..., Any])


def _digest(token: str) -> bytes:
    # surrogatepass: any str encodes, so no presented value can raise instead of failing the check.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def token_matches(authorization: str, expected_digest: bytes) -> bool:
    """Whether an `Authorization` header value is `Bearer <the token>`, in constant time."""
    scheme, _, presented = authorization.partition(" ")
    # Compared before the scheme is looked at, so that every request takes the same path.
    matches = hmac.compare_digest(_digest(presented), expected_digest)
    return matches and scheme.lower() == "bearer"


def require_admin_token(token: str) -> Callable[[F], F]:
    """Guards a view: 404 while no token is configured, 401 unless the request presents it."""
    expected = _digest(token) if token else None

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if expected is None:
                abort(404)  # admin endpoints are off until a token is configured
            if not token_matches(request.headers.get("Authorization", ""), expected):
                # RFC 6750: a 401 names the scheme the client should use.
                raise Unauthorized(www_authenticate=WWWAuthenticate("bearer"))
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
