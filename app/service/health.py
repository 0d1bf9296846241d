"""Probes: liveness says the process answers; readiness says its dependencies do."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

health = Blueprint("health", __name__)


@health.get("/healthz")
def liveness() -> Any:
    return jsonify({"status": "alive"})


@health.get("/readyz")
def readiness() -> Any:
    services = current_app.extensions["service"]
    checks = {"database": _check(lambda: _ping_database(services.engine)),
              "redis": _check(services.obs.redis.client.ping)}
    ready = all(result == "ok" for result in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503


def _ping_database(engine: Any) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _check(probe: Any) -> str:
    try:
        probe()
    except Exception as error:
        return f"failed: {type(error).__name__}"
    return "ok"
