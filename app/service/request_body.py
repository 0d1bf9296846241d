"""Request bodies: parsed as strict JSON, and held to MAX_BODY_BYTES however they are sent.

Python's JSON parser accepts `NaN` and `Infinity`, which are not JSON and pass every range check
(NaN compares false with any bound), and raises RecursionError, not ValueError, on deeply nested
input (`[[[[...` within the size limit), which Flask's `get_json(silent=True)` lets through as a
500. Both become ValueError here, which `get_json` treats as an unparsable body: a 400.

A chunked body has no Content-Length for Werkzeug to check up front; it reads such a body up to
the limit and silently stops, so the part beyond MAX_BODY_BYTES would be ignored instead of
refused. A body that fills the limit is refused with 413 instead (one of exactly the limit too:
without reading further the two cannot be told apart).
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask import Request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


class StrictJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_constant", _refuse_constant)
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


class BoundedRequest(Request):
    def get_data(self, *args: Any, **kwargs: Any) -> Any:
        data = super().get_data(*args, **kwargs)
        stream = self.stream
        if (self.content_length is None and self.max_content_length is not None
                and getattr(stream, "is_exhausted", False)):
            raise RequestEntityTooLarge()
        return data
