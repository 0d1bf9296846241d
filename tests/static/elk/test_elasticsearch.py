"""elasticsearch/: the index template, its lifecycle, the roles and the field list, against real records.

Elasticsearch itself is not run by these tests (the native integ-test-zip comes later): every field
the app writes, the README documents or the app passes as `extra` must have an explicit mapping of a
type its values fit, using only field types that the minimal distribution has.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any

import pytest

from tests.static.elk.stack_files import (
    REPO,
    app_extra_keys,
    leaf_fields,
    load_json,
    readme_log_fields,
)

# Types of the server module alone: the integ-test-zip has no x-pack and no modules, so no
# match_only_text, wildcard, constant_keyword, flattened, scaled_float.
BASIC_TYPES = {"keyword", "text", "ip", "date", "date_nanos", "long", "integer", "short", "byte", "double",
               "float", "boolean", "geo_point", "object"}
INTEGER_RANGES = {"byte": 2**7, "short": 2**15, "integer": 2**31, "long": 2**63}
NUMERIC = {"double", "float", *INTEGER_RANGES}
# Fields Logstash adds or keeps from Filebeat (logstash/pipeline/app-logs.conf).
PIPELINE_FIELDS = {"@timestamp": {"date"}, "tags": {"keyword"}, "log.file.path": {"keyword"},
                   "log.offset": {"long"}, "geoip.location": {"geo_point"}, "geoip.ip": {"ip"},
                   "geoip.country_code2": {"keyword"}, "geoip.city_name": {"keyword"},
                   "log_parse_error.type": {"keyword"}, "log_parse_error.message": {"text"}}
IDENTIFIERS = ["request_id", "trace_id", "span_id", "user_id", "fingerprint", "task.id", "task.name", "service.name",
               "service.version", "service.environment", "level", "logger", "layer", "category", "event",
               "endpoint", "operation", "error.type", "request.method"]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_json("elasticsearch/index-template.json")


@pytest.fixture(scope="module")
def mappings(template: dict[str, Any]) -> dict[str, Any]:
    return template["template"]["mappings"]


def explicit_fields(properties: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Dotted path -> mapping of every leaf field the template names."""
    fields: dict[str, dict[str, Any]] = {}
    for name, mapping in properties.items():
        if "properties" in mapping:
            fields.update(explicit_fields(mapping["properties"], f"{prefix}{name}."))
        else:
            fields[f"{prefix}{name}"] = mapping
    return fields


def all_mappings(node: Any) -> list[dict[str, Any]]:
    """Every mapping object in the template: fields, sub-fields, dynamic templates."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            found.append(node)
        for value in node.values():
            found.extend(all_mappings(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(all_mappings(value))
    return found


def fits(mapping_type: str, value: Any) -> bool:
    if mapping_type in ("keyword", "text"):
        return isinstance(value, str)
    if mapping_type == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
    if mapping_type in INTEGER_RANGES:
        bound = INTEGER_RANGES[mapping_type]
        return isinstance(value, int) and not isinstance(value, bool) and -bound <= value < bound
    if mapping_type in ("double", "float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if mapping_type == "boolean":
        return isinstance(value, bool)
    if mapping_type in ("date", "date_nanos"):
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    raise AssertionError(f"no value check for {mapping_type}")


def test_the_template_covers_the_daily_indices_only(template: dict[str, Any]) -> None:
    assert template["index_patterns"] == ["app-logs-*"]
    assert re.fullmatch(r"app-logs-\*", template["index_patterns"][0])
    assert "data_stream" not in template, "Logstash writes plain daily indices"
    settings = template["template"]["settings"]["index"]
    assert settings["number_of_shards"] == 1
    # One replica where a second node holds it (extensions/elasticsearch-cluster), none on a single
    # node, where it could never be assigned and would keep the cluster yellow.
    assert settings["auto_expand_replicas"] == "0-1"
    assert "number_of_replicas" not in settings


def test_the_template_loads_without_ilm(template: dict[str, Any]) -> None:
    # The lifecycle lives in a component template that setup installs only where ILM exists.
    assert "lifecycle" not in str(template["template"]["settings"])
    component = load_json("elasticsearch/lifecycle-component-template.json")
    assert template["composed_of"] == template["ignore_missing_component_templates"] == ["app-logs-lifecycle"]
    assert component["template"]["settings"] == {"index.lifecycle.name": "app-logs"}


def test_only_basic_field_types_are_used(template: dict[str, Any]) -> None:
    types = {mapping["type"] for mapping in all_mappings(template["template"]["mappings"])}
    assert types <= BASIC_TYPES, types - BASIC_TYPES


def test_unknown_strings_become_bounded_keywords_and_nothing_is_guessed(mappings: dict[str, Any]) -> None:
    assert mappings["date_detection"] is False, "one date-looking string would fix a field's type for the day"
    assert mappings["numeric_detection"] is False
    [strings] = [next(iter(entry.values())) for entry in mappings["dynamic_templates"]]
    assert strings["match_mapping_type"] == "string"
    assert strings["mapping"]["type"] == "keyword"
    assert 0 < strings["mapping"]["ignore_above"] <= 8191


def test_every_field_of_real_records_is_mapped_to_a_type_its_values_fit(
        mappings: dict[str, Any], app_records: list[dict[str, Any]]) -> None:
    fields = explicit_fields(mappings["properties"])
    seen: set[str] = set()
    for record in app_records:
        for path, value in leaf_fields(record):
            seen.add(path)
            assert path in fields, f"{path} has no explicit mapping"
            assert fits(fields[path]["type"], value), f"{path}={value!r} does not fit {fields[path]['type']}"
    # The records really cover the access, slow-query, error and audit shapes.
    assert {"status_code", "duration_ms", "response_bytes", "statement", "error.stack_trace", "episode_id",
            "trace_id", "user_id", "request.ip", "dependency"} <= seen


def test_every_documented_and_every_extra_field_is_mapped(mappings: dict[str, Any]) -> None:
    fields = explicit_fields(mappings["properties"])
    documented = readme_log_fields()
    assert {"timestamp", "request.ip", "task.id", "error.stack_trace", "response_bytes", "outcome"} <= documented
    assert documented - fields.keys() == set()
    extras = app_extra_keys()
    assert {"event", "fingerprint", "episode_id", "countdown_s"} <= extras
    assert extras - fields.keys() == set()


def test_the_fields_the_pipeline_adds_are_mapped(mappings: dict[str, Any]) -> None:
    fields = explicit_fields(mappings["properties"])
    for path, types in PIPELINE_FIELDS.items():
        assert fields[path]["type"] in types, path


def test_field_types(mappings: dict[str, Any]) -> None:
    fields = explicit_fields(mappings["properties"])
    for path in IDENTIFIERS:
        assert fields[path]["type"] == "keyword", path
    assert fields["request.ip"]["type"] == "ip"
    assert fields["status_code"]["type"] in ("short", "integer")
    assert fields["duration_ms"]["type"] in NUMERIC and fields["threshold_ms"]["type"] in NUMERIC
    assert fields["response_bytes"]["type"] == "long"
    assert fields["@timestamp"]["type"] == "date"
    assert fields["timestamp"]["type"] in ("date", "date_nanos")
    for path in ("message", "error.message", "error.stack_trace", "statement"):
        assert fields[path]["type"] == "text", path
    for path in ("message", "error.message", "statement"):
        assert fields[path]["fields"]["keyword"]["type"] == "keyword", path


def test_the_lifecycle_deletes_daily_indices_after_a_week() -> None:
    policy = load_json("elasticsearch/ilm-policy.json")["policy"]
    phases = policy["phases"]
    assert set(phases) == {"hot", "delete"}
    assert phases["delete"]["actions"] == {"delete": {}}
    assert phases["delete"]["min_age"] == "7d"
    # Rollover needs a write alias, which daily indices named by Logstash do not have: ILM would stop.
    assert "rollover" not in str(phases)
    assert "7 days" in policy["_meta"]["description"]


@pytest.fixture(scope="module")
def roles() -> dict[str, dict[str, Any]]:
    return {path.stem: load_json(f"elasticsearch/roles/{path.name}")
            for path in sorted((REPO / "elasticsearch" / "roles").glob("*.json"))}


def test_roles_reach_the_app_logs_indices_only(roles: dict[str, dict[str, Any]]) -> None:
    assert set(roles) == {"logstash_writer", "grafana_reader"}
    for name, role in roles.items():
        assert [entry["names"] for entry in role["indices"]] == [["app-logs-*"]], name
        # Read-only cluster information (GET /, licence) and nothing else.
        assert set(role["cluster"]) <= {"monitor"}, name
        for forbidden in ("run_as", "applications", "remote_indices", "global"):
            assert forbidden not in role, name


def test_logstash_may_only_add_documents(roles: dict[str, dict[str, Any]]) -> None:
    privileges = set(roles["logstash_writer"]["indices"][0]["privileges"])
    # auto_configure: index creation from a bulk request and new fields' mappings (8.0+).
    assert {"create_doc", "create_index", "auto_configure"} <= privileges
    assert privileges <= {"create_doc", "create_index", "auto_configure", "view_index_metadata"}
    assert roles["logstash_writer"]["cluster"] == ["monitor"], "the output checks GET / and the licence"


def test_grafana_may_only_read(roles: dict[str, dict[str, Any]]) -> None:
    assert set(roles["grafana_reader"]["indices"][0]["privileges"]) == {"read", "view_index_metadata"}


def test_the_readme_field_table_is_the_template(mappings: dict[str, Any]) -> None:
    fields = explicit_fields(mappings["properties"])
    text = (REPO / "elasticsearch" / "README.md").read_text().split("\n## Fields", 1)[1]
    table = dict(re.findall(r"^\| `([^`]+)` \| `?([a-z_]+)`?", text, re.MULTILINE))
    assert table == {path: mapping["type"] for path, mapping in fields.items()}
