"""grafana/dashboards/*.json: what grafana/build_dashboards.py writes, every data source referred to by
uid and provisioned, every query valid PromQL over metrics the service exports."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.scripts import load_script
from tests.support.tools import promql_metric_names

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "grafana"
DASHBOARDS_DIR = GRAFANA / "dashboards"
EXPECTED = {"service-red", "ai-calls", "database", "celery", "alerts"}
# Grafana 13's dashboard schema version: older ones are migrated at every load, newer ones are unknown.
SCHEMA_VERSION = 42
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")

Dashboards = dict[str, dict[str, Any]]


def _generator() -> ModuleType:
    return load_script(GRAFANA / "build_dashboards.py", "build_dashboards")


@pytest.fixture(scope="module")
def dashboards() -> Dashboards:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def _items(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of every mapping in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _items(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _items(item, f"{path}[{i}]")


def _prometheus_queries(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL of the panels' targets, and the selectors of the label_values() variables."""
    queries = [target["expr"] for panel in _panels(dashboard) for target in panel.get("targets", [])
               if target["datasource"]["type"] == "prometheus"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query" and variable["datasource"]["type"] == "prometheus":
            match = LABEL_VALUES.match(variable["definition"])
            assert match, f"not a label_values() variable: {variable['definition']}"
            assert variable["query"]["query"] == variable["definition"], variable["name"]
            queries.append(match["selector"])
    return queries


def test_the_files_are_the_generators_output() -> None:
    generator = _generator()
    assert {name.removesuffix(".json") for name in generator.DASHBOARDS} == EXPECTED
    assert {path.stem for path in DASHBOARDS_DIR.glob("*.json")} == EXPECTED
    for name, build in generator.DASHBOARDS.items():
        assert (DASHBOARDS_DIR / name).read_text() == generator.render(build), (
            f"{name} differs from grafana/build_dashboards.py's output: run it and commit both")


def test_each_dashboard_has_its_file_name_as_uid_and_grafana_13_schema(dashboards: Dashboards) -> None:
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] == name
        assert dashboard["schemaVersion"] == SCHEMA_VERSION, name
        # File provisioning refuses the v2 model ("dashboard appears to be in v2 format").
        assert not {"apiVersion", "spec", "elements", "layout"} & set(dashboard), name
        assert dashboard["editable"] is False, name
        assert "id" not in dashboard, f"{name}: a database id would clash between Grafana instances"
        ids = [panel["id"] for panel in _panels(dashboard)]
        assert len(ids) == len(set(ids)), name
    titles = [dashboard["title"] for dashboard in dashboards.values()]
    assert len(titles) == len(set(titles))


def test_every_data_source_is_referred_to_by_uid_and_provisioned(
        dashboards: Dashboards, datasources: dict[str, dict[str, Any]]) -> None:
    references = 0
    for name, dashboard in dashboards.items():
        for path, key, value in _items(dashboard):
            if key == "datasource":
                # A string is a data source *name* (or the mixed or built-in pseudo data sources).
                assert isinstance(value, dict) and set(value) == {"type", "uid"}, f"{name}{path}: {value!r}"
                assert value["uid"] in datasources, f"{name}{path}: no data source with uid {value['uid']!r}"
                assert value["type"] == datasources[value["uid"]]["type"], f"{name}{path}: {value}"
                references += 1
            elif key == "datasourceUid":
                assert value in datasources, f"{name}{path}: {value!r}"
    assert references > len(dashboards)


def test_each_target_uses_its_panels_data_source(dashboards: Dashboards) -> None:
    for name, dashboard in dashboards.items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                assert target["datasource"] == panel["datasource"], f"{name}: {panel['title']}"


def test_every_promql_expression_parses_and_selects_exported_metrics(
        dashboards: Dashboards, known_metric_names: set[str], to_promql: Callable[[str], str]) -> None:
    queries = {to_promql(query): (name, query) for name, dashboard in dashboards.items()
               for query in _prometheus_queries(dashboard)}
    assert len(queries) > 30, "the dashboards' queries were not found"
    for promql, metrics in promql_metric_names(list(queries)).items():
        name, query = queries[promql]
        assert metrics, f"{name}: selects no metric: {query}"
        assert metrics <= known_metric_names, f"{name}: {sorted(metrics - known_metric_names)} in {query}"


def test_every_variable_a_query_uses_is_defined(dashboards: Dashboards) -> None:
    for name, dashboard in dashboards.items():
        defined = {variable["name"] for variable in dashboard["templating"]["list"]}
        for query in _prometheus_queries(dashboard):
            used = set(re.findall(r"\$\{?(\w+)", query)) - {"__rate_interval", "__interval", "__range"}
            assert used <= defined, f"{name}: {sorted(used - defined)} in {query}"


def test_service_red_has_latency_quantiles_per_endpoint(dashboards: Dashboards) -> None:
    queries = _prometheus_queries(dashboards["service-red"])
    for q in ("0.5", "0.95", "0.99"):
        expected = (f"histogram_quantile({q}, sum by (le, endpoint) (rate(http_request_duration_seconds_bucket"
                    '{endpoint=~"$endpoint"}[$__rate_interval])))')
        assert expected in queries, q
    (endpoint,) = dashboards["service-red"]["templating"]["list"]
    assert endpoint["definition"] == "label_values(http_requests_total, endpoint)"
    assert any("http_requests_in_flight" in q for q in queries)
    assert "max(active_users)" in queries


def test_log_panels_search_elasticsearch_whose_trace_ids_link_to_jaeger(
        dashboards: Dashboards, datasources: dict[str, dict[str, Any]]) -> None:
    searches = {}
    for name, dashboard in dashboards.items():
        for panel in _panels(dashboard):
            if panel["type"] == "logs":
                (target,) = panel["targets"]
                assert datasources[panel["datasource"]["uid"]]["type"] == "elasticsearch", name
                assert target["metrics"][0]["type"] == "logs", name
                searches[name] = target["query"]
    assert searches == {
        "service-red": "level:(ERROR OR CRITICAL)",
        "alerts": "level:(ERROR OR CRITICAL)",
        "database": "event:slow_query",
    }
    # Exact matches on keyword fields of the index template.
    mapped = json.loads((REPO / "elasticsearch" / "index-template.json").read_text())["template"]["mappings"]
    for query in searches.values():
        for field in re.findall(r"(\w+):", query):
            assert mapped["properties"][field]["type"] == "keyword", (query, field)
    es = next(ds for ds in datasources.values() if ds["type"] == "elasticsearch")
    assert [link["datasourceUid"] for link in es["jsonData"]["dataLinks"]] == [
        next(uid for uid, ds in datasources.items() if ds["type"] == "jaeger")]


def test_alerts_dashboard_shows_firing_alerts_and_the_services_notifications(
        dashboards: Dashboards, datasources: dict[str, dict[str, Any]]) -> None:
    alerts = dashboards["alerts"]
    queries = _prometheus_queries(alerts)
    assert 'ALERTS{alertstate="firing"}' in queries
    assert any("alert_notifications_total" in q for q in queries)
    assert [p["options"]["stateFilter"]["firing"] for p in _panels(alerts) if p["type"] == "alertlist"] == [True]
    # Alertmanager is no panel data source; the link opens Grafana's page for its alert groups, which
    # takes the data source's name.
    (link,) = [link for link in alerts["links"] if link["type"] == "link"]
    alertmanager = next(ds for ds in datasources.values() if ds["type"] == "alertmanager")
    assert link["url"] == f"/alerting/groups?alertmanager={alertmanager['name']}"


def test_panels_fit_the_grid_without_overlapping(dashboards: Dashboards) -> None:
    for name, dashboard in dashboards.items():
        taken: dict[tuple[int, int], str] = {}
        for panel in _panels(dashboard):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']}"
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in taken, f"{name}: {panel['title']} overlaps {taken[x, y]}"
                    taken[x, y] = panel["title"]
