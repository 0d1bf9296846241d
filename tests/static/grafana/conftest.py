"""What the Grafana tests share: the provisioned data sources, the service's metric names, and the
translation of Grafana's query templates into PromQL that Prometheus's parser accepts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promql_sources import PROMETHEUS_SERIES, as_promql, service_metric_names

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "grafana"
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "datasources.yml"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def datasources() -> dict[str, dict[str, Any]]:
    """The provisioned data sources by uid."""
    return {ds["uid"]: ds for ds in load_yaml(DATASOURCES_FILE)["datasources"]}


@pytest.fixture(scope="session")
def known_metric_names() -> set[str]:
    names = service_metric_names((REPO / "README.md").read_text())
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "active_users"} <= names
    return names | PROMETHEUS_SERIES


@pytest.fixture(scope="session")
def to_promql() -> Callable[[str], str]:
    return as_promql
