"""Request bodies are parsed as strict JSON (RFC 8259), so that a hostile body is a 400.

Python's parser accepts `NaN` and `Infinity`, which are not JSON and pass every range check (NaN
compares false with any bound), and raises RecursionError, not ValueError, on deeply nested input
(`[[[[...` within the body size limit): Flask's `get_json(silent=True)` then lets it through as a 500.
Both become ValueError here, which `get_json` treats as an unparsable body.
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask.json.provider import DefaultJSONProvider


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


class StrictJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_constant", _refuse_constant)
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
