"""The issue's performance targets, each checked against a micro-benchmark figure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    limit: float
    unit: str
    measured: Callable[[dict[str, Any]], float | None]


def _scrape_ms(micro: dict[str, Any], live: int, restarts: int) -> float | None:
    for scenario in micro.get("metrics_scrape", {}).get("scenarios", []):
        if scenario["live_workers"] == live and scenario["restarts"] == restarts:
            return scenario["median_ms"]
    return None  # a smoke run does not go that far


TARGETS = (
    Target("request_path_overhead_us",
           "request id + access log + metrics over bare Flask, per request (micro b)", 50.0, "µs",
           lambda micro: micro.get("request_path", {}).get("overhead_us")),
    Target("tracing_cost_ratio_to_otel",
           "the project's tracing cost ÷ OpenTelemetry's own Flask instrumentation + SDK, 100 % sampled (micro c)",
           1.10, "ratio", lambda micro: micro.get("tracing", {}).get("ratio_to_otel")),
    Target("metrics_scrape_4_workers_100_restarts_ms",
           "one /metrics collection with 4 live workers after 100 restarts (micro d)", 50.0, "ms",
           lambda micro: _scrape_ms(micro, 4, 100)),
)


def evaluate(micro: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value; `met` is None where the value was not measured."""
    evaluated = []
    for target in TARGETS:
        value = target.measured(micro)
        evaluated.append({
            "name": target.name,
            "description": target.description,
            "limit": target.limit,
            "unit": target.unit,
            "measured": value,
            "met": None if value is None else value <= target.limit,
        })
    return evaluated
