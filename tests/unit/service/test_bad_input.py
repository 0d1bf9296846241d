"""Every bad input the hostile-input work tried by hand, with the answer it must get. The fuzzers
(test_openapi.py, test_hostile_input.py) explore around these; this table pins the cases that
once were a 500 or a forged record, and is the list the README's Security section refers to."""

from __future__ import annotations

import pytest

from tests.support.logs import parse_lines

TOKEN = "bad-input-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
JSON = "application/json"
DEEP = "[" * 100_000 + "]" * 100_000  # within MAX_BODY_BYTES, far beyond the parser's recursion limit

# (what, method, path, request options, status)
CASES = [
    # Query parameters
    ("limit as a superscript digit (isdigit() but not int())", "GET", "/api/episodes?limit=%C2%B2", {}, 400),
    ("limit in full-width digits", "GET", "/api/episodes?limit=%EF%BC%91%EF%BC%92", {}, 400),
    ("limit of 5,000 digits (over int()'s limit)", "GET", "/api/episodes?limit=" + "9" * 5000, {}, 400),
    ("limit zero-padded to 20 digits", "GET", "/api/episodes?limit=" + "0" * 19 + "5", {}, 400),
    ("limit negative", "GET", "/api/episodes?limit=-1", {}, 400),
    ("limit as a float", "GET", "/api/episodes?limit=1e2", {}, 400),
    ("limit empty", "GET", "/api/episodes?limit=", {}, 400),
    ("limit with a NUL", "GET", "/api/episodes?limit=1%00", {}, 400),
    ("offset above its maximum", "GET", "/api/episodes?offset=1000001", {}, 400),
    ("an unknown parameter", "GET", "/api/episodes?limit%5B%5D=1&x=%0d%0a", {}, 200),
    ("admin limit as a superscript digit", "GET", "/admin/errors?limit=%C2%B2", {"headers": ADMIN}, 400),
    ("admin limit of 5,000 digits", "GET", "/admin/errors?limit=" + "9" * 5000, {"headers": ADMIN}, 400),
    # Paths
    ("episode id 0", "GET", "/api/episodes/0", {}, 404),
    ("episode id negative", "GET", "/api/episodes/-1", {}, 404),
    ("episode id above the column's range", "GET", "/api/episodes/2147483648", {}, 404),
    ("episode id of 20 digits", "GET", "/api/episodes/99999999999999999999", {}, 404),
    ("episode id in full-width digits (read as 1)", "GET", "/api/episodes/%EF%BC%91", {}, 200),
    ("CR/LF and a header in the path", "GET", "/api/episodes/1%0d%0aSet-Cookie:%20x=1", {}, 404),
    ("dot segments towards /admin", "GET", "/api/../admin/chaos", {}, 404),
    ("a 10,000-character path", "GET", "/api/" + "a" * 10_000, {}, 404),
    ("an unknown method", "PATCH", "/api/episodes", {}, 405),
    ("/metrics on the public port", "GET", "/metrics", {}, 404),
    # Headers
    ("X-Request-ID with CR/LF and a header", "GET", "/api/episodes",
     {"environ_overrides": {"HTTP_X_REQUEST_ID": "abcdefgh\r\nSet-Cookie: x=1"}}, 200),
    ("X-Request-ID of 10 KB", "GET", "/api/episodes", {"environ_overrides": {"HTTP_X_REQUEST_ID": "a" * 10_000}}, 200),
    ("X-Request-ID holding a JSON record", "GET", "/api/episodes",
     {"environ_overrides": {"HTTP_X_REQUEST_ID": '{"level":"ERROR","message":"forged"}'}}, 200),
    ("X-Request-ID non-ASCII", "GET", "/api/episodes",
     {"environ_overrides": {"HTTP_X_REQUEST_ID": "idé-0123456"}}, 200),
    ("X-User-ID with CR/LF", "GET", "/api/episodes", {"environ_overrides": {"HTTP_X_USER_ID": "alice\r\nbob"}}, 400),
    ("X-User-ID of 65 characters", "GET", "/api/episodes", {"headers": {"X-User-ID": "a" * 65}}, 400),
    ("X-User-ID empty", "GET", "/api/episodes", {"headers": {"X-User-ID": ""}}, 400),
    ("X-User-ID holding JSON", "GET", "/api/episodes", {"headers": {"X-User-ID": '{"admin":true}'}}, 400),
    ("User-Agent of 10 KB", "GET", "/api/episodes", {"headers": {"User-Agent": "u" * 10_000}}, 200),
    ("Authorization with another scheme", "GET", "/admin/chaos", {"headers": {"Authorization": f"Basic {TOKEN}"}}, 401),
    ("Authorization, right length, wrong token", "GET", "/admin/chaos",
     {"headers": {"Authorization": "Bearer " + "x" * len(TOKEN)}}, 401),
    # Bodies
    ("a body that is not JSON", "POST", "/api/episodes", {"data": "{", "content_type": JSON}, 400),
    ("a JSON array", "POST", "/api/episodes", {"json": [1, 2]}, 400),
    ("a JSON string", "POST", "/api/episodes", {"json": "title"}, 400),
    ("JSON null", "POST", "/api/episodes", {"data": "null", "content_type": JSON}, 400),
    ("JSON nested 100,000 deep (RecursionError)", "POST", "/api/episodes", {"data": DEEP, "content_type": JSON}, 400),
    ("NaN in a body", "POST", "/api/episodes", {"data": '{"title": NaN, "script": "x"}', "content_type": JSON}, 400),
    ("invalid UTF-8 in a body", "POST", "/api/episodes",
     {"data": b'{"title":"\xff","script":"x"}', "content_type": JSON}, 400),
    ("JSON sent as text/plain", "POST", "/api/episodes", {"data": '{"title":"a","script":"b"}',
                                                          "content_type": "text/plain"}, 400),
    ("title of whitespace", "POST", "/api/episodes", {"json": {"title": " \t\n", "script": "x"}}, 400),
    ("title of 201 characters", "POST", "/api/episodes", {"json": {"title": "t" * 201, "script": "x"}}, 400),
    ("title with a NUL (PostgreSQL refuses it)", "POST", "/api/episodes",
     {"json": {"title": "a\u0000b", "script": "x"}}, 400),
    ("title as a 5,000-digit number", "POST", "/api/episodes",
     {"data": '{"title": 1' + "0" * 5000 + ', "script": "x"}', "content_type": JSON}, 400),
    ("script of 100,001 characters", "POST", "/api/episodes", {"json": {"title": "t", "script": "s" * 100_001}}, 400),
    ("a body above MAX_BODY_BYTES", "POST", "/api/episodes",
     {"data": "x" * (1_048_576 + 1), "content_type": JSON}, 413),
    ("knob as a 401-digit integer (float() overflows)", "PUT", "/admin/chaos",
     {"data": '{"latency_ms": 1' + "0" * 400 + "}", "content_type": JSON, "headers": ADMIN}, 400),
    ("knob NaN", "PUT", "/admin/chaos", {"data": '{"error_rate": NaN}', "content_type": JSON, "headers": ADMIN}, 400),
    ("knob -Infinity", "PUT", "/admin/chaos",
     {"data": '{"ai_failure_rate": -Infinity}', "content_type": JSON, "headers": ADMIN}, 400),
    ("knob 1e400 (infinite)", "PUT", "/admin/chaos",
     {"data": '{"error_rate": 1e400}', "content_type": JSON, "headers": ADMIN}, 400),
    ("knobs nested 100,000 deep", "PUT", "/admin/chaos", {"data": DEEP, "content_type": JSON, "headers": ADMIN}, 400),
    ("knob as a string", "PUT", "/admin/chaos", {"json": {"error_rate": "1"}, "headers": ADMIN}, 400),
]


@pytest.fixture
def client(make_service):
    client = make_service(admin_token=TOKEN, broker_url="memory://").test_client()
    client.post("/api/episodes", json={"title": "One", "script": "INT. ROOM - DAY"})
    return client


@pytest.mark.parametrize(("what", "method", "path", "options", "status"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_its_status_and_no_forged_record(client, capfd, what, method, path, options, status) -> None:
    capfd.readouterr()
    response = client.open(path, method=method, **options)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.is_json
    if status >= 400:
        assert response.get_json()["request_id"]
    for name, value in response.headers.items():
        assert "\r" not in value and "\n" not in value, name
        assert "forged" not in value and "Set-Cookie" not in value, name
    out, err = capfd.readouterr()
    assert err == ""
    records = parse_lines(out)  # fails unless every line is JSON
    assert all(isinstance(record, dict) for record in records)
    assert [r for r in records if r.get("event") == "unhandled_exception"] == []
    assert not any(r.get("message") == "forged" for r in records)
