"""The performance targets (README: Targets), each checked against a figure of the same run."""

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
    at_least: bool  # throughput ratios must reach the limit; costs must stay under it
    measured: Callable[[dict[str, Any]], float | None]

    def met(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit


def _row(variant: str, endpoint: str, key: str = "ratio_to_bare") -> Callable[[dict[str, Any]], float | None]:
    """A figure of one row of the whole-process table."""
    def measured(result: dict[str, Any]) -> float | None:
        for row in result.get("results", []):
            if row["variant"] == variant and row["endpoint"] == endpoint:
                return row.get(key)
        return None  # a partial run without that variant or endpoint

    return measured


def _tracing_part_ratio(result: dict[str, Any]) -> float | None:
    # The tracing part: the project with tracing minus the project without it (request ids stay on
    # in both), against OpenTelemetry's own instrumentation minus bare Flask.
    tracing = result.get("micro", {}).get("tracing", {})
    ours, theirs = tracing.get("project_over_request_ids_only_us"), tracing.get("otel_over_bare_us")
    return round(ours / theirs, 3) if ours is not None and theirs else None


def _scrape_ms(result: dict[str, Any]) -> float | None:
    for scenario in result.get("micro", {}).get("metrics_scrape", {}).get("scenarios", []):
        if scenario["live_workers"] == 4 and scenario["restarts"] == 100:
            return scenario["median_ms"]
    return None  # a smoke run does not go that far


def _name(variant: str, endpoint: str, figure: str) -> str:
    return f"{variant.replace('-', '_')}_{endpoint}_{figure}"


def _throughput(variant: str, endpoint: str, limit: float) -> Target:
    return Target(_name(variant, endpoint, "ratio"), f"{variant} on {endpoint}, req/s ÷ bare (wrk)",
                  limit, "x", True, _row(variant, endpoint))


def _ahead_of_otel(variant: str, endpoint: str) -> Target:
    return Target(_name(variant, endpoint, "to_otel"), f"{variant} on {endpoint}, req/s ÷ otel's (wrk)",
                  1.5, "x", True, _row(variant, endpoint, "ratio_to_otel"))


def _tail(variant: str, endpoint: str, limit: float) -> Target:
    return Target(_name(variant, endpoint, "p99_ratio"), f"{variant} on {endpoint}, p99 ÷ bare's p99 (wrk)",
                  limit, "x", False, _row(variant, endpoint, "p99_ratio_to_bare"))


_ENDPOINTS = ("trivial", "db")

TARGETS = (
    _throughput("full-100", "trivial", 0.55),
    _throughput("full-default", "trivial", 0.65),
    _throughput("full-100", "db", 0.70),
    _throughput("full-default", "db", 0.80),
    _throughput("logs-only", "trivial", 0.85),
    _throughput("metrics-only", "trivial", 0.90),
    *(_ahead_of_otel(variant, endpoint) for variant in ("tracing-only", "full-default") for endpoint in _ENDPOINTS),
    *(_tail(variant, endpoint, 5.0) for variant in ("full-100", "tracing-only") for endpoint in _ENDPOINTS),
    *(_tail("full-default", endpoint, 3.0) for endpoint in _ENDPOINTS),
    Target("request_path_overhead_us", "request id + access log + metrics over bare Flask, per request (micro b)",
           35.0, "µs", False, lambda result: result.get("micro", {}).get("request_path", {}).get("overhead_us")),
    Target("tracing_part_ratio_to_otel",
           "the project's tracing part ÷ OpenTelemetry's own Flask instrumentation + SDK, 100 % sampled (micro c)",
           0.60, "x", False, _tracing_part_ratio),
    Target("metrics_scrape_4_workers_100_restarts_ms",
           "one /metrics collection with 4 live workers after 100 restarts (micro d)", 50.0, "ms", False, _scrape_ms),
)


def evaluate(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value; `met` is None where the run did not measure it."""
    evaluated = []
    for target in TARGETS:
        value = target.measured(result)
        evaluated.append({
            "name": target.name,
            "description": target.description,
            "limit": target.limit,
            "unit": target.unit,
            "at_least": target.at_least,
            "measured": value,
            "met": None if value is None else target.met(value),
        })
    return evaluated
