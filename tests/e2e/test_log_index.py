"""The app's records in Elasticsearch: the project's index template installed by setup, the records of
this run searchable by request id and trace id (term queries: keyword fields), the intended types.

The records come from the provider's log shipper (``Provider.log_shipper``): the OpenTelemetry
Collector natively and with the compose extension, Filebeat and Logstash in the compose stack. The time
from the response to the record being searchable is one of the visibility figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.e2e_app import TRACE_ID, USER, elasticsearch, new_request_id
from tests.support.e2e_clients import Elasticsearch, session
from tests.support.e2e_stack import Provider
from tests.support.log_shaping import index_of
from tests.support.visibility import Visibility, wait_for, wait_visible

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = "app-logs"
# The types the design asks for: exact-match ids, numbers, an address, a date.
INTENDED_TYPES = {"request_id": "keyword", "trace_id": "keyword", "span_id": "keyword", "duration_ms": "double",
                  "status_code": "integer", "request.ip": "ip", "@timestamp": "date", "event": "keyword"}
SEARCH_TIMEOUT = {"native": 30, "compose": 180}


def field_types(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"request.ip": "ip", ...}`` from a mapping's properties."""
    found = {}
    for name, spec in properties.items():
        if "properties" in spec:
            found.update(field_types(spec["properties"], f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = spec.get("type", "object")
    return found


@pytest.fixture(scope="module")
def es(endpoint: Callable[[str], str], provider: Provider) -> Elasticsearch:
    endpoint("elasticsearch")
    return elasticsearch(provider)


def test_setup_installed_the_projects_index_template(es: Elasticsearch) -> None:
    response = es.get(f"/_index_template/{TEMPLATE}")
    assert response.status_code == 200, response.text
    (found,) = response.json()["index_templates"]
    assert found["name"] == TEMPLATE
    template = found["index_template"]
    assert template["index_patterns"] == ["app-logs-*"]
    ours = json.loads((REPO / "elasticsearch" / "index-template.json").read_text())
    assert field_types(template["template"]["mappings"]["properties"]) == \
        field_types(ours["template"]["mappings"]["properties"])


@dataclass(frozen=True)
class Indexed:
    request_id: str
    trace_id: str


@pytest.fixture(scope="module")
def indexed(provider: Provider, es: Elasticsearch, visibility: Visibility) -> Indexed:
    provider.require(*provider.log_shipper())
    request_id = new_request_id("logs")
    response = session().post(f"{provider.url('app')}/api/episodes", json={"title": "E2E logs", "script": "x"},
                              headers={"X-Request-ID": request_id, "X-User-ID": USER}, timeout=10)
    answered_at = time.time()
    assert response.status_code == 201, response.text
    query = {"bool": {"filter": [{"term": {"request_id": request_id}}, {"term": {"event": "api_access"}}]}}
    shipper = " + ".join(provider.log_shipper())
    (hit,) = wait_visible(visibility, "access record in Elasticsearch", answered_at, "response",
                          f"term query on request_id ({shipper})", lambda: es.search("app-logs-*", query),
                          timeout=SEARCH_TIMEOUT[provider.mode], test="log index")
    return Indexed(request_id, hit["_source"]["trace_id"])


def test_this_runs_records_are_searchable_by_request_id_and_trace_id(es: Elasticsearch, indexed: Indexed) -> None:
    def both() -> list[dict[str, Any]]:  # compose: the audit record may come in Logstash's next batch
        hits = es.search("app-logs-*", {"term": {"request_id": indexed.request_id}}, size=100)
        events = {hit["_source"].get("event") for hit in hits}
        return hits if {"api_access", "episode_created"} <= events else []

    by_request = wait_for(f"the access and audit records of {indexed.request_id}", both, timeout=60)
    access = next(hit for hit in by_request if hit["_source"].get("event") == "api_access")
    document = access["_source"]
    assert TRACE_ID.match(document["trace_id"]), document
    assert document["trace_id"] == indexed.trace_id
    assert access["_index"] == index_of(document), "the day of @timestamp chooses the index"
    assert "private_ip" in document.get("tags", []), document  # 127.0.0.1

    by_trace = es.search("app-logs-*", {"term": {"trace_id": indexed.trace_id}}, size=100)
    assert {hit["_source"]["request_id"] for hit in by_trace} == {indexed.request_id}
    assert access["_id"] in {hit["_id"] for hit in by_trace}

    # Numbers are numbers: a range query on duration_ms and status_code finds the record.
    ranged = es.search("app-logs-*", {"bool": {"filter": [
        {"term": {"request_id": indexed.request_id}}, {"range": {"duration_ms": {"gte": 0}}},
        {"range": {"status_code": {"gte": 200, "lt": 300}}}]}})
    assert [hit["_id"] for hit in ranged] == [access["_id"]]


def test_the_index_has_the_intended_types(es: Elasticsearch, indexed: Indexed) -> None:
    (access,) = es.search("app-logs-*", {"bool": {"filter": [
        {"term": {"request_id": indexed.request_id}}, {"term": {"event": "api_access"}}]}})
    response = es.get(f"/{access['_index']}/_mapping")
    assert response.status_code == 200, response.text
    mapping = response.json()[access["_index"]]["mappings"]
    types = field_types(mapping["properties"])
    assert {name: types.get(name) for name in INTENDED_TYPES} == INTENDED_TYPES
    assert mapping.get("date_detection") is False, "strings are never guessed to be dates"
