"""What the Grafana tests share: the provisioned data sources, the service's metric names, and the
translation of Grafana's query templates into PromQL that Prometheus's parser accepts."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "grafana"
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "datasources.yml"

# Grafana's built-in variables, replaced by values of the right kind (durations here).
_BUILTIN_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# Series Prometheus makes itself rather than the service.
_PROMETHEUS_SERIES = {"ALERTS", "up"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


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


@pytest.fixture(scope="session")
def datasources() -> dict[str, dict[str, Any]]:
    """The provisioned data sources by uid."""
    return {ds["uid"]: ds for ds in load_yaml(DATASOURCES_FILE)["datasources"]}


@pytest.fixture(scope="session")
def known_metric_names() -> set[str]:
    names = service_metric_names((REPO / "README.md").read_text())
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "active_users_total"} <= names
    return names | _PROMETHEUS_SERIES


@pytest.fixture(scope="session")
def to_promql() -> Callable[[str], str]:
    return as_promql
