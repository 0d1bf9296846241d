"""The service's OpenAPI 3.1 description (`openapi.json` beside this module), served at
`GET /openapi.json` on the public port.

Served, not only kept in the repository: it reveals nothing the README does not (the admin
operations are documented there too, and still need the token), and it lets a client or a fuzzer
find the API from the running service (`schemathesis run http://127.0.0.1:8000/openapi.json`).
A test keeps it and the Flask routes in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response

SPEC_PATH = Path(__file__).with_name("openapi.json")


def openapi_blueprint() -> Blueprint:
    # Read once, at start-up: a missing file stops the start instead of failing requests.
    spec = SPEC_PATH.read_bytes()
    blueprint = Blueprint("openapi", __name__)

    @blueprint.get("/openapi.json")
    def description() -> Any:
        return Response(spec, mimetype="application/json")

    return blueprint
