"""Where the stack's PromQL lives (alert and recording rules, Grafana dashboards), and which series
the service documents: shared by the static checks and the check against real /metrics output."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
PROMETHEUS_UID = "prometheus"

# Grafana's built-in variables, replaced by values of the right kind (durations here).
_BUILTIN_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# Series Prometheus makes itself rather than the service.
PROMETHEUS_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE", "up"})


def as_promql(expr: str) -> str:
    """A Grafana query as PromQL: built-in variables become durations, dashboard variables (used as
    regex matcher values, `endpoint=~"$endpoint"`) match everything. A variable anywhere else makes
    the result unparsable, as it should."""
    for name, value in _BUILTIN_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$__" not in expr, f"a built-in Grafana variable this test does not know: {expr}"
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def service_metric_names(readme: str) -> set[str]:
    """The series the service exports, from the README's Metrics table (which tests/unit keeps in
    step with the code): counters as named there, histograms as their _bucket/_sum/_count series."""
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for name, kind in re.findall(r"^\| `([a-z_]+)` \| (\w+)", section, flags=re.MULTILINE):
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


def rules(kind: str) -> Iterator[dict[str, Any]]:
    """Every rule of `kind` ("alert" or "record") in the rule files."""
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from (rule for rule in group["rules"] if kind in rule)


def rule_expressions() -> list[str]:
    return [rule["expr"] for rule in [*rules("alert"), *rules("record")]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules("record")}


def _targets(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "expr" in node and isinstance(node.get("datasource"), dict):
            yield node
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list):
        for item in node:
            yield from _targets(item)


def dashboard_expressions() -> list[str]:
    """Every Prometheus query of every dashboard, as PromQL."""
    exprs = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        for target in _targets(json.loads(path.read_text())):
            if target["datasource"].get("uid") == PROMETHEUS_UID and target["expr"]:
                exprs.append(as_promql(target["expr"]))
    return exprs


def dashboard_variable_metrics() -> set[str]:
    """Metric names of the dashboards' `label_values(metric, label)` template variables."""
    names = set()
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        for variable in json.loads(path.read_text()).get("templating", {}).get("list", []):
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            names |= set(re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)", text))
    return names
