"""The service's OpenAPI 3.1 description (`openapi.json` beside this module), served at
`GET /openapi.json` on the public port, and the front door `GET /` that lists what is there,
derived from the same description.

Served, not only kept in the repository: it reveals nothing the README does not (the admin
operations are documented there too, and still need the token), and it lets a client or a fuzzer
find the API from the running service (`schemathesis run http://127.0.0.1:8000/openapi.json`).
A test keeps it and the Flask routes in step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify

SPEC_PATH = Path(__file__).with_name("openapi.json")


_METHODS = ("get", "put", "post", "delete", "patch")


def front_door(spec: dict[str, Any], service: str, version: str) -> dict[str, Any]:
    """What `GET /` answers: the service, where its description and probes are, and every operation."""
    operations = [{"method": method.upper(), "path": path, "summary": operation.get("summary", ""),
                   **({"needs": "admin token"} if operation.get("security") else {})}
                  for path, item in spec["paths"].items() if path != "/"
                  for method, operation in item.items() if method in _METHODS]
    return {"service": service, "version": version,
            "links": {"openapi": "/openapi.json", "liveness": "/healthz", "readiness": "/readyz"},
            "operations": operations}


def openapi_blueprint(service: str, version: str) -> Blueprint:
    # Read once, at start-up: a missing file stops the start instead of failing requests.
    spec = SPEC_PATH.read_bytes()
    index = front_door(json.loads(spec), service, version)
    blueprint = Blueprint("openapi", __name__)

    @blueprint.get("/")
    def home() -> Any:
        return jsonify(index)

    @blueprint.get("/openapi.json")
    def description() -> Any:
        return Response(spec, mimetype="application/json")

    return blueprint
