"""grafana/provisioning/datasources/datasources.yml: the data sources exist with fixed uids, point at
each other by uid, and keep their secret in the environment."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import promql_metric_names

REPO = Path(__file__).resolve().parents[3]
DATASOURCES_FILE = REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml"
COMPOSE_FILE = REPO / "docker-compose.yml"
LOKI_DATASOURCE_FILE = REPO / "extensions" / "loki" / "grafana" / "datasource-loki.yml"
# Grafana replaces $NAME and ${NAME} in provisioning files with environment variables; `$$` is a `$`.
ENV_REFERENCE = re.compile(r"(?<!\$)\$(?:\{(\w+)\}|([A-Za-z_]\w*))")

EXPECTED = {
    "prometheus": ("prometheus", "http://prometheus:9090"),
    "elasticsearch": ("elasticsearch", "http://elasticsearch:9200"),
    "jaeger": ("jaeger", "http://jaeger:16686"),
    "alertmanager": ("alertmanager", "http://alertmanager:9093"),
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _uid_of_type(datasources: dict[str, dict[str, Any]], kind: str) -> str:
    (uid,) = [uid for uid, ds in datasources.items() if ds["type"] == kind]
    return uid


def _references(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, uid) under a key naming another data source's uid."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"datasourceUid", "alertmanagerUid"}:
                yield f"{path}.{key}", value
            yield from _references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _references(item, f"{path}[{i}]")


def _unescape(value: str) -> str:
    """A value as Grafana stores it: `$$` -> `$` (no environment variable in the values used here)."""
    return value.replace("$$", "$")


def test_the_four_data_sources_have_fixed_uids_and_compose_urls() -> None:
    document = load_yaml(DATASOURCES_FILE)
    assert document["apiVersion"] == 1
    uids = [ds["uid"] for ds in document["datasources"]]
    assert len(uids) == len(set(uids)), uids
    found = {ds["uid"]: (ds["type"], ds["url"]) for ds in document["datasources"]}
    assert found == EXPECTED
    assert [ds["uid"] for ds in document["datasources"] if ds.get("isDefault")] == ["prometheus"]
    assert all(ds["access"] == "proxy" and ds["editable"] is False for ds in document["datasources"])


def test_every_uid_a_data_source_refers_to_exists(datasources: dict[str, dict[str, Any]]) -> None:
    references = list(_references(list(datasources.values())))
    assert references, "no cross references found: the walk is broken"
    missing = [(path, uid) for path, uid in references if uid not in datasources]
    assert not missing, missing
    prometheus = datasources[_uid_of_type(datasources, "prometheus")]
    assert prometheus["jsonData"]["alertmanagerUid"] == _uid_of_type(datasources, "alertmanager")


def test_prometheus_scrape_interval_is_prometheus_own(datasources: dict[str, dict[str, Any]]) -> None:
    """$__rate_interval is computed from it: a shorter one gives rate() windows with too few samples."""
    prometheus = datasources[_uid_of_type(datasources, "prometheus")]
    scrape = load_yaml(REPO / "prometheus" / "prometheus.yml")["global"]["scrape_interval"]
    assert prometheus["jsonData"]["timeInterval"] == scrape


def test_elasticsearch_reads_the_app_logs_as_grafana_reader(datasources: dict[str, dict[str, Any]]) -> None:
    es = datasources[_uid_of_type(datasources, "elasticsearch")]
    assert es["jsonData"]["index"] == "app-logs-*"
    assert es["jsonData"]["timeField"] == "@timestamp"
    assert es["jsonData"]["logMessageField"] == "message"
    assert es["jsonData"]["logLevelField"] == "level"
    assert es["basicAuth"] is True
    assert es["basicAuthUser"] == "grafana_reader"
    # The password is the environment's, never a value written into the file.
    assert es["secureJsonData"] == {"basicAuthPassword": "$GRAFANA_ES_READER_PASSWORD"}


def test_elasticsearch_links_trace_id_to_the_jaeger_data_source(datasources: dict[str, dict[str, Any]]) -> None:
    es = datasources[_uid_of_type(datasources, "elasticsearch")]
    (link,) = es["jsonData"]["dataLinks"]
    assert link["datasourceUid"] == _uid_of_type(datasources, "jaeger")
    # Grafana matches `field` as a regular expression against the field names.
    assert re.search(link["field"], "trace_id")
    assert not re.search(link["field"], "extra_trace_id")
    assert not re.search(link["field"], "span_id")
    # The internal link's query is the field's value: Jaeger's trace-id lookup.
    assert _unescape(link["url"]) == "${__value.raw}"


def test_jaeger_links_spans_to_their_records_in_elasticsearch(datasources: dict[str, dict[str, Any]]) -> None:
    to_logs = datasources[_uid_of_type(datasources, "jaeger")]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == _uid_of_type(datasources, "elasticsearch")
    assert to_logs["customQuery"] is True
    # Lucene on the records' trace_id field, with the span's trace id.
    assert _unescape(to_logs["query"]) == 'trace_id:"${__span.traceId}"'
    # The records of a span are written around its start and end, not exactly within them.
    assert to_logs["spanStartTimeShift"].startswith("-")
    assert not to_logs["spanEndTimeShift"].startswith("-")


def test_jaeger_trace_to_metrics_queries_parse_with_and_without_the_span_tag(
        datasources: dict[str, dict[str, Any]], known_metric_names: set[str]) -> None:
    to_metrics = datasources[_uid_of_type(datasources, "jaeger")]["jsonData"]["tracesToMetrics"]
    assert to_metrics["datasourceUid"] == _uid_of_type(datasources, "prometheus")
    assert to_metrics["tags"] == [{"key": "http.route", "value": "endpoint"}]
    # $__tags becomes `endpoint="..."` when the span has http.route, and nothing when it has not.
    queries = [_unescape(q["query"]).replace("$__tags", tags)
               for q in to_metrics["queries"] for tags in ('endpoint="/api/episodes"', "")]
    assert all("$" not in q for q in queries), queries
    names = promql_metric_names(queries)
    for query, metrics in names.items():
        assert metrics, query
        assert metrics <= known_metric_names, (query, metrics - known_metric_names)


def test_the_fields_grafana_reads_are_in_the_index_template(datasources: dict[str, dict[str, Any]]) -> None:
    template = json.loads((REPO / "elasticsearch" / "index-template.json").read_text())
    mapped = template["template"]["mappings"]["properties"]
    es = datasources[_uid_of_type(datasources, "elasticsearch")]["jsonData"]
    assert es["index"] in template["index_patterns"]
    assert mapped[es["timeField"]]["type"] == "date"
    assert mapped[es["logMessageField"]]["type"] == "text"
    # Exact matches: the level of each record, and the trace id Jaeger's link searches for.
    assert mapped[es["logLevelField"]]["type"] == "keyword"
    (link,) = es["dataLinks"]
    assert mapped[link["field"].strip("^$")]["type"] == "keyword"
    query = datasources[_uid_of_type(datasources, "jaeger")]["jsonData"]["tracesToLogsV2"]["query"]
    assert mapped[query.split(":", 1)[0]]["type"] == "keyword"


def test_alertmanager_is_the_prometheus_implementation(datasources: dict[str, dict[str, Any]]) -> None:
    alertmanager = datasources[_uid_of_type(datasources, "alertmanager")]
    assert alertmanager["jsonData"] == {"implementation": "prometheus", "handleGrafanaManagedAlerts": False}


@pytest.mark.parametrize("path", [DATASOURCES_FILE, LOKI_DATASOURCE_FILE], ids=lambda p: p.name)
def test_every_environment_variable_a_provisioning_file_reads_is_set_on_grafana(path: Path) -> None:
    """An unset variable becomes an empty string at provisioning: a data source with no password."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    wanted = {a or b for a, b in ENV_REFERENCE.findall(text.replace("$$", ""))}
    environment = load_yaml(COMPOSE_FILE)["services"]["grafana"]["environment"]
    assert wanted <= set(environment), wanted - set(environment)
