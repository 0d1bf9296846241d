from __future__ import annotations

import pytest

from tests.support.demo_app import build_demo_app


def test_unhandled_exception_is_logged_once_and_answered_as_json(demo, log_lines) -> None:
    app, _ = demo
    response = app.test_client().get("/boom", headers={"X-Request-ID": "boom-000001"})
    assert response.status_code == 500
    body = response.get_json()
    assert body["request_id"] == "boom-000001"
    assert body["error"]["status"] == 500
    assert "division" not in response.get_data(as_text=True)  # internals stay in the logs
    (record,) = log_lines.events("unhandled_exception")
    assert record["level"] == "ERROR"
    assert (record["layer"], record["category"]) == ("application", "error")
    assert record["error"]["type"] == "ZeroDivisionError"
    assert "Traceback" in record["error"]["stack_trace"]
    assert record["fingerprint"]
    assert record["endpoint"] == "/boom"


@pytest.mark.parametrize(("method", "path", "data", "status"), [
    ("GET", "/missing", None, 404),
    ("DELETE", "/ok", None, 405),
    ("POST", "/echo", b"x" * 5000, 413),
    ("GET", "/items/101", None, 404),
])
def test_http_errors_keep_their_status_and_never_alert(demo, log_lines, method, path, data, status) -> None:
    app, _ = demo
    response = app.test_client().open(path, method=method, data=data)
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["error"]["status"] == status
    assert log_lines.events("unhandled_exception") == []
    if status == 405:
        assert "GET" in response.headers["Allow"]


def test_redis_outage_leaves_requests_untouched_and_warns_once(demo, log_lines) -> None:
    app, _ = demo
    client = app.test_client()
    statuses = [client.get("/boom").status_code for _ in range(30)]
    assert statuses == [500] * 30
    records = log_lines.read()
    assert len([r for r in records if r.get("event") == "unhandled_exception"]) == 30
    warnings = [r for r in records if r.get("event") == "dependency_degraded"]
    assert len(warnings) == 1
    assert warnings[0]["dependency"] == "redis"


def test_admin_view_is_off_without_a_token(demo) -> None:
    app, _ = demo
    assert app.test_client().get("/admin/errors").status_code == 404


def test_admin_view_requires_the_token(make_config) -> None:
    app, _ = build_demo_app(make_config(admin_token="s3cret-token"))
    client = app.test_client()
    assert client.get("/admin/errors").status_code == 401
    assert client.get("/admin/errors", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/admin/errors", headers={"Authorization": "Basic s3cret-token"}).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert client.get("/admin/errors?limit=0", headers=good).status_code == 400
    # Authorised, but the aggregation store (Redis) is down here: a clear 503, not a 500.
    assert client.get("/admin/errors", headers=good).status_code == 503


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


def test_an_exception_that_cannot_be_printed_still_gets_a_json_500(demo, log_lines) -> None:
    app, _ = demo

    def broken() -> None:
        raise _UnprintableError

    app.add_url_rule("/unprintable", "unprintable", broken)
    response = app.test_client().get("/unprintable")
    assert response.status_code == 500
    assert response.get_json()["request_id"]
    records = log_lines.read()
    assert [r["event"] for r in records if r.get("event") in ("unhandled_exception", "api_access")] == [
        "unhandled_exception", "api_access"]
