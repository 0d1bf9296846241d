"""Fixtures of the log pipeline's static tests: the repository's config files, and real records.

Filebeat, Logstash, Elasticsearch and Kibana cannot run on this machine, so their configs are checked
against what the app really writes: the service runs here (SQLite, Redis unreachable on purpose,
tracing on) with LOG_FILE pointing at a temporary app.jsonl, and serves a few requests that produce
access, audit, slow-query, unhandled-exception and degraded-dependency records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from observability import ObservabilityConfig
from sandbox.net import free_port
from tests.static.elk.stack_files import LOG_FILE

SCRIPT = "FADE IN:\nINT. KITCHEN - NIGHT\nALICE\nPass me the [kettle].\nCUT TO:\n"


@pytest.fixture(scope="session")
def app_log_lines(tmp_path_factory: pytest.TempPathFactory, span_exporter: Any) -> list[str]:
    """The lines the real service wrote to its LOG_FILE while serving a handful of requests."""
    from service import create_app
    from service.settings import ServiceSettings

    workdir = tmp_path_factory.mktemp("elk-records")
    log_file = workdir / Path(LOG_FILE).name
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # free: nothing listens there
    config = ObservabilityConfig(tracing_enabled=True, redis_url=dead_redis, log_file=str(log_file),
                                 slow_query_threshold_ms=0.0, degraded_warning_interval_seconds=60.0)
    settings = ServiceSettings(database_url=f"sqlite:///{workdir / 'service.db'}",
                               broker_url=dead_redis, ai_latency_ms=0.0)
    app = create_app(settings, config)

    @app.get("/boom")
    def boom() -> Any:
        raise ZeroDivisionError("division by zero in order 12345")

    client = app.test_client()
    headers = {"X-User-ID": "user-7", "X-Request-ID": "elk-static-0001"}
    created = client.post("/api/episodes", json={"title": "t", "script": SCRIPT}, headers=headers)
    assert created.status_code == 201
    episode_id = created.get_json()["id"]
    assert client.get(f"/api/episodes/{episode_id}").status_code == 200
    assert client.get("/api/episodes/999999").status_code == 404
    assert client.get("/boom").status_code == 500
    return [line for line in log_file.read_text().split("\n") if line]


@pytest.fixture(scope="session")
def app_records(app_log_lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in app_log_lines]


@pytest.fixture(scope="session")
def records_by_event(app_records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in app_records:
        grouped.setdefault(record.get("event", ""), []).append(record)
    return grouped
