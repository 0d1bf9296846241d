"""Request metrics on a demo app: route templates as labels, no series from what clients choose."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from observability.http_metrics import UNMATCHED_ENDPOINT


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_by_route_template_not_raw_path(demo) -> None:
    app, _ = demo
    client = app.test_client()
    before = _value("http_requests_total", method="GET", endpoint="/items/<int:item_id>", status="200")
    for item_id in range(5):
        client.get(f"/items/{item_id}")
    assert _value("http_requests_total", method="GET", endpoint="/items/<int:item_id>", status="200") == before + 5
    assert _value("http_request_duration_seconds_count", method="GET", endpoint="/items/<int:item_id>") >= 5


def test_unknown_paths_and_methods_do_not_create_series(demo) -> None:
    app, _ = demo
    client = app.test_client()
    before = _value("http_requests_total", method="OTHER", endpoint=UNMATCHED_ENDPOINT, status="405")
    client.get("/random/path/abc123")
    client.open("/ok", method="BREW")
    exposition = generate_latest(REGISTRY).decode()
    assert "/random/path/abc123" not in exposition and "BREW" not in exposition
    assert _value("http_requests_total", method="OTHER", endpoint=UNMATCHED_ENDPOINT, status="405") == before + 1


def test_errors_are_counted_as_500_and_by_type(demo) -> None:
    app, _ = demo
    before = _value("http_requests_total", method="GET", endpoint="/boom", status="500")
    before_type = _value("app_errors_total", error_type="ZeroDivisionError")
    app.test_client().get("/boom")
    assert _value("http_requests_total", method="GET", endpoint="/boom", status="500") == before + 1
    assert _value("app_errors_total", error_type="ZeroDivisionError") == before_type + 1


def test_in_flight_returns_to_its_level(demo) -> None:
    app, _ = demo
    before = _value("http_requests_in_flight")
    app.test_client().get("/ok")
    app.test_client().get("/boom")
    assert _value("http_requests_in_flight") == before
