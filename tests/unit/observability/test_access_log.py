from __future__ import annotations


def test_one_access_record_per_request_with_the_design_fields(demo, log_lines) -> None:
    app, _ = demo
    response = app.test_client().get("/items/7", headers={"User-Agent": "probe/1.0", "X-Request-ID": "acc-000001"})
    assert response.status_code == 200
    assert response.headers["X-Response-Time"].endswith("ms")
    (record,) = log_lines.events("api_access")
    assert record["layer"] == "access"
    assert record["status_code"] == 200
    assert record["endpoint"] == "/items/<int:item_id>"
    assert record["duration_ms"] >= 0
    assert float(response.headers["X-Response-Time"][:-2]) == record["duration_ms"]
    assert record["request"] == {"method": "GET", "path": "/items/7", "ip": "127.0.0.1", "user_agent": "probe/1.0"}
    assert record["request_id"] == "acc-000001"


def test_probes_are_not_logged_but_still_answered(demo, log_lines) -> None:
    app, _ = demo
    assert app.test_client().get("/healthz").status_code == 200
    assert log_lines.events("api_access") == []


def test_errors_are_logged_with_their_status(demo, log_lines) -> None:
    app, _ = demo
    client = app.test_client()
    client.get("/items/500")
    client.get("/no/such/route")
    client.delete("/ok")
    statuses = [(r["status_code"], r["endpoint"]) for r in log_lines.events("api_access")]
    # Routing failures (404, 405) have no route template: never the raw path either.
    assert statuses == [(404, "/items/<int:item_id>"), (404, None), (405, None)]


def test_user_agent_is_bounded(demo, log_lines) -> None:
    app, _ = demo
    app.test_client().get("/ok", headers={"User-Agent": "u" * 5000})
    (record,) = log_lines.events("api_access")
    assert len(record["request"]["user_agent"]) == 512
