"""The OpenAPI description (app/service/openapi.json) against the service: every Flask route is
documented and every documented operation exists, and schemathesis fuzzes each operation in
process (valid and invalid parameters, headers and bodies) with these checks: no 5xx beyond the
documented 502/503 of unavailable dependencies, responses as documented (status, media type,
schema), no response header carrying CR/LF or bytes the client sent, and every log line written
during the call one JSON object."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api import _NOT_BLANK
from service.openapi import SPEC_PATH

ADMIN_TOKEN = "openapi-fuzz-admin-token-0123"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{7,127}")
_PROBES = ("/healthz", "/readyz")
# Response headers whose values the server computes (dates, lengths, timings), never from input.
_COMPUTED_HEADERS = {"date", "content-length", "x-response-time", "content-type", "allow", "www-authenticate"}

settings.register_profile(
    "openapi-fuzz",
    max_examples=50,          # per operation, valid and invalid together: a few seconds each
    derandomize=True,         # the same examples on every run, in CI as on a laptop
    deadline=None,
    database=None,            # nothing written under .hypothesis/
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much],
)

CONFIG = schemathesis.Config.from_dict({
    "base-url": "http://localhost",  # requests go to the WSGI app in process, never to a socket
    # 502 (the AI provider failed) and 503 (Redis, the broker or PostgreSQL down: this suite runs
    # with Redis and the broker unreachable on purpose) are honest answers; status_code_conformance
    # keeps them to the operations that document them. A 500 fails.
    "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "502", "503"]}},
    "generation": {"mode": "all", "deterministic": True},
})
SCHEMA = schemathesis.openapi.from_path(SPEC_PATH, config=CONFIG)


def _spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture
def service(make_service):
    # An in-memory broker: queued extractions answer 202 at once (with the unit suite's unreachable
    # broker, each would wait for a connection timeout; the 503 path has a test of its own).
    app = make_service(admin_token=ADMIN_TOKEN, broker_url="memory://")
    client = app.test_client()
    for title in ("One", "Two"):  # ids 1 and 2 exist, so the operations on an episode get past 404
        client.post("/api/episodes", json={"title": title, "script": "INT. ROOM - DAY\nANA\nThe [key]."})
    return app


def _documented_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in _spec()["paths"].items()
            for method in item if method in {"get", "put", "post", "delete", "patch"}}


def _routed_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return operations


def test_every_route_is_documented_and_every_documented_operation_exists(service) -> None:
    routed, documented = _routed_operations(service), _documented_operations()
    assert routed - documented == set(), "routes missing from openapi.json"
    assert documented - routed == set(), "operations in openapi.json that no route serves"


def test_the_description_is_served_as_it_is_in_the_repository(service) -> None:
    response = service.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == _spec()


def test_admin_operations_require_the_bearer_scheme_and_nothing_else_does() -> None:
    spec = _spec()
    assert spec["components"]["securitySchemes"]["adminToken"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["adminToken"][
            "description"]}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            secured = operation.get("security") == [{"adminToken": []}]
            assert secured == path.startswith("/admin/"), f"{method.upper()} {path}"


def _attacker_strings(case) -> list[str]:
    """What the client chose in this request, long enough to be told apart from computed values."""
    chosen = [str(v) for v in (case.headers or {}).values()]
    chosen += [str(v) for v in (case.query or {}).values()]
    chosen += [str(v) for v in (case.path_parameters or {}).values()]
    return [value for value in chosen if len(value) >= 6]


def _is_the_echoed_request_id(case, name: str, value: str) -> bool:
    # A well-formed X-Request-ID is echoed on purpose; anything else is replaced by a generated id.
    sent = {k.lower(): str(v) for k, v in (case.headers or {}).items()}.get("x-request-id", "")
    return name.lower() == "x-request-id" and value == sent and bool(_SAFE_REQUEST_ID.fullmatch(sent))


def no_header_injection(ctx, response, case) -> None:
    """No response header holds CR/LF or a value the client sent (beyond a valid X-Request-ID)."""
    chosen = _attacker_strings(case)
    for name, values in response.headers.items():
        for value in values:
            assert "\r" not in value and "\n" not in value, f"{name}: {value!r}"
            if name.lower() not in _COMPUTED_HEADERS and not _is_the_echoed_request_id(case, name, value):
                leaked = [c for c in chosen if c in value]
                assert not leaked, f"response header {name}: {value!r} carries client input {leaked!r}"


def _records_written(capfd) -> list[dict[str, Any]]:
    out, err = capfd.readouterr()
    assert err == "", f"stderr is not a log stream: {err[:500]!r}"
    records = []
    for line in out.split("\n"):
        if line:
            record = json.loads(line)  # fails the example unless every line is JSON
            assert isinstance(record, dict), f"a log line that is not one JSON object: {line[:200]!r}"
            records.append(record)
    return records


def _present_token_sometimes(case) -> None:
    # Half the admin cases present the real token, so that their bodies and parameters are fuzzed
    # past the token check; the others keep the generated (wrong, missing or malformed) one.
    if case.path.startswith("/admin/") and len(str((case.headers or {}).get("Authorization", ""))) % 2 == 0:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}


@SCHEMA.parametrize()
@settings(settings.get_profile("openapi-fuzz"))
def test_every_operation_survives_hostile_input(case, service, capfd) -> None:
    _present_token_sometimes(case)
    capfd.readouterr()
    case.call_and_validate(
        app=service,  # the WSGI transport: in process, no socket
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance, no_header_injection])
    records = _records_written(capfd)
    assert [r for r in records if r.get("event") == "unhandled_exception"] == []
    if not case.path.startswith(_PROBES):
        assert len([r for r in records if r.get("event") == "api_access"]) == 1


def test_the_front_door_lists_the_description_the_probes_and_every_operation(service) -> None:
    response = service.test_client().get("/")
    assert response.status_code == 200
    index = response.get_json()
    assert (index["service"], index["version"]) == ("episodes-api", "0.1.0")
    assert index["links"] == {"openapi": "/openapi.json", "liveness": "/healthz", "readiness": "/readyz"}
    listed = {(operation["method"], operation["path"]) for operation in index["operations"]}
    assert listed == _documented_operations() - {("GET", "/")}
    guarded = {operation["path"] for operation in index["operations"] if operation.get("needs") == "admin token"}
    assert guarded == {"/admin/chaos", "/admin/errors"}


def test_the_description_states_only_what_the_app_enforces() -> None:
    spec = _spec()
    request_id = spec["components"]["parameters"]["RequestId"]
    assert "pattern" not in request_id["schema"]  # a value that breaks it is replaced, not refused
    assert _SAFE_REQUEST_ID.pattern in request_id["description"]
    text = re.compile(spec["components"]["schemas"]["NewEpisode"]["properties"]["title"]["pattern"])
    for value in ("a", " \t x", "\u00a0", "\u3000", "é\n"):
        assert bool(text.search(value)) == bool(_NOT_BLANK.search(value)), repr(value)
    for refused in ("", " \t\r\n ", "a\x00b"):
        assert not text.search(refused), repr(refused)
