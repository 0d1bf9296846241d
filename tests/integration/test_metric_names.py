"""Every metric the alert rules and dashboards select is in the service's real /metrics output,
after traffic that exercises every code path that records one (web and Celery worker)."""

from __future__ import annotations

import pytest
import requests
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import ADMIN, wait_until
from tests.support.promql_sources import (
    PROMETHEUS_SERIES,
    dashboard_expressions,
    dashboard_variable_metrics,
    recorded_names,
    rule_expressions,
)
from tests.support.tools import promql_metric_names

pytestmark = pytest.mark.integration
# Series of the other scrape jobs (Prometheus, Alertmanager, Jaeger, node-exporter), not the service's.
_OTHER_JOBS = ("prometheus_", "alertmanager_", "otelcol_", "node_")


def _sample_names(exposition: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(exposition) for sample in family.samples}


def _drive_every_path(client, worker) -> None:
    episode = client.post("/api/episodes", json={"title": "m", "script": "INT. PIT - DAY\nKAI"},
                          headers={"X-User-ID": "metrics-user"}).get_json()["id"]
    assert client.post(f"/api/episodes/{episode}/extract").status_code == 200
    client.put("/admin/chaos", json={"ai_failure_rate": 1.0, "slow_query_ms": 120}, headers=ADMIN)
    assert client.post(f"/api/episodes/{episode}/extract").status_code == 502
    assert client.get("/api/episodes").status_code == 200  # slow query through the knob
    client.put("/admin/chaos", json={"error_rate": 1.0}, headers=ADMIN)
    assert client.get("/api/episodes").status_code == 500  # unhandled error, alert queued
    client.put("/admin/chaos", json={}, headers=ADMIN)
    client.post(f"/api/episodes/{episode}/extract-async")
    wait_until(lambda: any(r.get("event") == "assets_extracted" and r.get("episode_id") == episode
                           for r in worker.records()), what="the queued extraction")


def test_rules_and_dashboards_select_only_series_the_service_exports(app, client, worker) -> None:
    _drive_every_path(client, worker)
    worker_metrics = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    wait_until(lambda: "alert_notifications_total" in requests.get(worker_metrics, timeout=5).text,
               what="the worker's notification metrics")
    users = app.extensions["observability"].users
    exported = (_sample_names(generate_latest(REGISTRY).decode())
                | _sample_names(requests.get(worker_metrics, timeout=5).text)
                | {sample.name for family in users.collect() for sample in family.samples})
    assert {"http_requests_total", "ai_calls_total", "db_slow_queries_total", "celery_tasks_total",
            "active_users"} <= exported
    allowed = exported | recorded_names() | PROMETHEUS_SERIES
    missing = {}
    for expr, names in promql_metric_names(rule_expressions() + dashboard_expressions()).items():
        unknown = {name for name in names - allowed if not name.startswith(_OTHER_JOBS)}
        if unknown:
            missing[expr] = sorted(unknown)
    unknown_variables = dashboard_variable_metrics() - allowed
    assert dashboard_variable_metrics(), "the dashboards' label_values variables were not found"
    assert not missing and not unknown_variables, f"never exported: {missing} {sorted(unknown_variables)}"
