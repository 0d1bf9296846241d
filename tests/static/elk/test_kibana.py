"""kibana/: its settings, and saved objects that point at the data view, fields that exist and records
that really match.

Kibana cannot run here. Its import format (Kibana 9: coreMigrationVersion, typeMigrationVersion,
references) was checked against Kibana's saved-object types; the saved searches' KQL is evaluated
below, for the small subset they use, against records the real app wrote.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.static.elk.stack_files import REPO, leaf_fields, load_json, load_yaml

DATA_VIEW_TITLE = "app-logs-*"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return load_yaml("kibana/kibana.yml")


@pytest.fixture(scope="module")
def saved_objects() -> list[dict[str, Any]]:
    lines = (REPO / "kibana" / "saved-objects.ndjson").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def searches(saved_objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["id"]: obj for obj in saved_objects if obj["type"] == "search"}


@pytest.fixture(scope="module")
def mapped_fields() -> dict[str, str]:
    def walk(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
        fields: dict[str, str] = {}
        for name, mapping in properties.items():
            if "properties" in mapping:
                fields.update(walk(mapping["properties"], f"{prefix}{name}."))
            else:
                fields[f"{prefix}{name}"] = mapping["type"]
                for sub, sub_mapping in mapping.get("fields", {}).items():
                    fields[f"{prefix}{name}.{sub}"] = sub_mapping["type"]
        return fields

    return walk(load_json("elasticsearch/index-template.json")["template"]["mappings"]["properties"])


def search_source(search: dict[str, Any]) -> dict[str, Any]:
    return json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])


# --- a KQL subset: field : value, field : (v or v), field : *, joined by or / and -----------------------
_KQL_TOKEN = re.compile(r'\s*(?:(?P<string>"[^"]*")|(?P<op>[():])|(?P<word>[^\s():"]+))')


def kql_matches(query: str, record: dict[str, Any]) -> bool:
    tokens = [m.group(m.lastgroup or "") for m in _KQL_TOKEN.finditer(query) if m.group().strip()]
    values = dict(leaf_fields(record))

    def disjunction(position: int, field: str | None) -> tuple[bool, int]:
        result, position = conjunction(position, field)
        while position < len(tokens) and tokens[position] == "or":
            right, position = conjunction(position + 1, field)
            result = result or right
        return result, position

    def conjunction(position: int, field: str | None) -> tuple[bool, int]:
        result, position = term(position, field)
        while position < len(tokens) and tokens[position] == "and":
            right, position = term(position + 1, field)
            result = result and right
        return result, position

    def term(position: int, field: str | None) -> tuple[bool, int]:
        token = tokens[position]
        if token == "(":
            result, position = disjunction(position + 1, field)
            assert tokens[position] == ")", query
            return result, position + 1
        if field is None:
            assert tokens[position + 1] == ":", f"outside the tested KQL subset: {query}"
            return term(position + 2, token)
        if token == "*":
            return field in values, position + 1
        return str(values.get(field)) == token.strip('"'), position + 1

    result, position = disjunction(0, None)
    assert position == len(tokens), f"outside the tested KQL subset: {query}"
    return result


def kql_fields(query: str) -> set[str]:
    return set(re.findall(r"([\w.@]+)\s*:", query))


# --- kibana.yml ---------------------------------------------------------------------------------------

def test_kibana_listens_in_its_container_and_uses_its_service_user(settings: dict[str, Any]) -> None:
    assert settings["server.host"] == "0.0.0.0"
    assert settings["elasticsearch.hosts"] == ["${ELASTICSEARCH_URL}"]
    assert settings["elasticsearch.username"] == "kibana_system"
    assert settings["elasticsearch.password"] == "${KIBANA_SYSTEM_PASSWORD}"
    assert settings["xpack.encryptedSavedObjects.encryptionKey"] == "${KIBANA_ENCRYPTION_KEY}"
    assert settings["telemetry.optIn"] is False


def test_no_secret_is_written_in_kibana_yml(settings: dict[str, Any]) -> None:
    for key, value in settings.items():
        if re.search(r"password|key|token|secret", key, re.IGNORECASE):
            assert re.fullmatch(r"\$\{[A-Z_]+\}", str(value)), key
    assert "changeme" not in (REPO / "kibana" / "kibana.yml").read_text()
    assert settings["elasticsearch.username"] != "elastic", "Kibana 8+ refuses the superuser"


def test_the_variables_kibana_needs_are_in_env_example_and_compose() -> None:
    text = (REPO / "kibana" / "kibana.yml").read_text()
    variables = set(re.findall(r"\$\{([A-Z_]+)\}", text))
    example = (REPO / ".env.example").read_text()
    for variable in variables - {"ELASTICSEARCH_URL"}:
        assert re.search(rf"^{variable}=", example, re.MULTILINE), variable
    compose_file = REPO / "docker-compose.yml"
    if not compose_file.exists():
        pytest.skip("docker-compose.yml is not in the tree yet")
    environment = load_yaml("docker-compose.yml")["services"]["kibana"]["environment"]
    assert variables <= set(environment)


# --- saved objects ----------------------------------------------------------------------------------

def test_every_object_has_a_unique_id_and_the_migration_versions(saved_objects: list[dict[str, Any]]) -> None:
    ids = [(obj["type"], obj["id"]) for obj in saved_objects]
    assert len(ids) == len(set(ids))
    for obj in saved_objects:
        assert re.fullmatch(r"\d+\.\d+\.\d+", obj["coreMigrationVersion"]), obj["id"]
        assert re.fullmatch(r"\d+\.\d+\.\d+", obj["typeMigrationVersion"]), obj["id"]
        assert obj["managed"] is False


def test_the_data_view_covers_the_daily_indices(saved_objects: list[dict[str, Any]],
                                                mapped_fields: dict[str, str]) -> None:
    [view] = [obj for obj in saved_objects if obj["type"] == "index-pattern"]
    assert view["id"] == "app-logs", "setup makes this id the default data view"
    assert view["attributes"]["title"] == DATA_VIEW_TITLE
    assert DATA_VIEW_TITLE in load_json("elasticsearch/index-template.json")["index_patterns"]
    assert mapped_fields[view["attributes"]["timeFieldName"]] == "date"


def test_searches_reference_the_data_view_that_exists(saved_objects: list[dict[str, Any]],
                                                      searches: dict[str, dict[str, Any]]) -> None:
    views = {obj["id"] for obj in saved_objects if obj["type"] == "index-pattern"}
    assert searches
    for search in searches.values():
        assert search["references"] == [{"id": search["references"][0]["id"], "name": INDEX_REF,
                                         "type": "index-pattern"}]
        assert search["references"][0]["id"] in views
        source = search_source(search)
        assert source["indexRefName"] == INDEX_REF
        assert "index" not in source, "the data view goes by reference, so that import can resolve it"
        assert source["query"]["language"] == "kuery"


def test_searches_name_only_mapped_fields(searches: dict[str, dict[str, Any]], mapped_fields: dict[str, str]) -> None:
    for search in searches.values():
        attributes = search["attributes"]
        used = set(attributes["columns"]) | {field for field, _ in attributes["sort"]}
        used |= kql_fields(search_source(search)["query"]["query"])
        assert used - mapped_fields.keys() == set(), search["id"]


def test_the_errors_search_finds_errors_and_nothing_else(searches: dict[str, dict[str, Any]],
                                                         app_records: list[dict[str, Any]]) -> None:
    query = search_source(searches["app-logs-errors"])["query"]["query"]
    assert {"level", "event"} <= kql_fields(query)
    for record in app_records:
        expected = record["level"] in ("ERROR", "CRITICAL") or record.get("event") == "unhandled_exception"
        assert kql_matches(query, record) is expected, record
    assert any(kql_matches(query, record) for record in app_records)
    # Shapes the run above does not produce: an error logged outside an exception, an exception
    # logged below ERROR.
    assert kql_matches(query, {"level": "ERROR", "event": "ai_call_failed"})
    assert kql_matches(query, {"level": "CRITICAL"})
    assert kql_matches(query, {"level": "INFO", "event": "unhandled_exception"})
    assert not kql_matches(query, {"level": "WARNING", "event": "slow_query"})


def test_the_slow_query_search_finds_slow_queries(searches: dict[str, dict[str, Any]],
                                                  records_by_event: dict[str, list[dict[str, Any]]]) -> None:
    query = search_source(searches["app-logs-slow-queries"])["query"]["query"]
    for event, records in records_by_event.items():
        for record in records:
            assert kql_matches(query, record) is (event == "slow_query")
    assert records_by_event["slow_query"]


def test_the_request_search_follows_one_request_id(searches: dict[str, dict[str, Any]],
                                                   app_records: list[dict[str, Any]]) -> None:
    search = searches["app-logs-request"]
    query = search_source(search)["query"]["query"]
    assert query == "request_id : *", "the user replaces * with one id"
    one = 'request_id : "elk-static-0001"'
    matched = [record for record in app_records if kql_matches(one, record)]
    assert {record.get("event") for record in matched} >= {"episode_created", "api_access"}
    assert all(record["request_id"] == "elk-static-0001" for record in matched)
    assert search["attributes"]["sort"][0] == ["@timestamp", "asc"], "a request reads from its start"
