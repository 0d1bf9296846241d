"""The native mirror of the log pipeline (tests/support/logstash_shape.py) against the pipeline file
and Filebeat's parser settings, and what it makes of real-looking lines. Static: no stack needed.

If logstash/pipeline/app-logs.conf or filebeat/filebeat.yml changes in a way the mirror does not
follow, these fail, so the native end-to-end test never indexes documents Logstash would not write.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.static.elk.logstash_config import Pipeline, parse
from tests.support import logstash_shape as mirror

REPO = Path(__file__).resolve().parents[2]
READ_AT = datetime(2026, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
RECORD = {"timestamp": "2027-01-01T00:00:00.123456+00:00", "level": "INFO", "logger": "observability.access",
          "message": "GET /api/episodes 200", "event": "api_access", "request_id": "e2e-shape-0001",
          "trace_id": "0af7651916cd43dd8448eb211c80319c", "status_code": 200, "duration_ms": 3.25,
          "request": {"method": "GET", "path": "/api/episodes", "ip": "127.0.0.1", "user_agent": "t"}}


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return parse((REPO / "logstash" / "pipeline" / "app-logs.conf").read_text())


def _filter(pipeline: Pipeline, plugin_id: str) -> Any:
    (found,) = [p for p in pipeline.sections["filter"] if p.settings.get("id") == plugin_id]
    return found


def test_the_mirror_follows_every_filter_of_the_pipeline_in_order(pipeline: Pipeline) -> None:
    assert tuple(p.settings.get("id") for p in pipeline.sections["filter"]) == mirror.FILTER_IDS


def test_the_mirrored_settings_are_the_pipelines(pipeline: Pipeline) -> None:
    unparsable = _filter(pipeline, "unparsable_line")
    assert unparsable.conditions == [mirror.UNPARSABLE_CONDITION]
    assert unparsable.settings["rename"] == mirror.UNPARSABLE_RENAME
    assert unparsable.settings["add_tag"] == [mirror.UNPARSABLE_TAG]

    date = _filter(pipeline, "record_time")
    assert date.name == "date" and date.conditions == ["[timestamp]"]
    assert date.settings["match"] == list(mirror.DATE_MATCH)
    assert date.settings["target"] == mirror.DATE_TARGET
    assert date.settings["tag_on_failure"] == [mirror.DATE_FAILURE_TAG]

    cidr = _filter(pipeline, "private_client")
    assert cidr.name == "cidr" and cidr.conditions == ["[request][ip]"]
    assert cidr.settings["address"] == ["%{[request][ip]}"]
    assert cidr.settings["network"] == list(mirror.PRIVATE_NETWORKS)
    assert cidr.settings["add_tag"] == [mirror.PRIVATE_TAG]
    # The lookup the mirror skips runs only for addresses that are not private.
    assert _filter(pipeline, "client_geo").conditions == ["[request][ip]", f'"{mirror.PRIVATE_TAG}" not in [tags]']

    noise = _filter(pipeline, "shipping_noise")
    assert noise.conditions == []
    assert noise.settings["remove_field"] == list(mirror.NOISE_FIELDS)

    output = pipeline.plugin("output", "elasticsearch")
    assert output.settings["index"] == mirror.INDEX_PATTERN
    assert output.settings["action"] == mirror.ACTION


def test_the_mirrored_filebeat_parser_is_filebeats() -> None:
    config = yaml.safe_load((REPO / "filebeat" / "filebeat.yml").read_text())
    (app_input,) = config["filebeat.inputs"]
    (parser,) = app_input["parsers"]
    assert parser["ndjson"] == {"target": "", "overwrite_keys": True, "add_error_key": True, "expand_keys": False}


def test_a_record_gets_its_own_time_a_private_tag_and_its_day_index() -> None:
    document = mirror.shape(json.dumps(RECORD), "/var/log/app/app.jsonl", 4096, READ_AT)
    assert document["@timestamp"] == "2027-01-01T00:00:00.123Z"  # the record's time, to the millisecond
    assert document["timestamp"] == RECORD["timestamp"]  # kept, with its microseconds
    assert mirror.index_name(document) == "app-logs-2027.01.01"  # not the day it was read
    assert document["tags"] == ["private_ip"]
    assert document["log"] == {"file": {"path": "/var/log/app/app.jsonl"}, "offset": 4096}
    for noise in ("agent", "ecs", "input", "host", "@version", "error", "log_parse_error", "geoip"):
        assert noise not in document
    assert {key: document[key] for key in RECORD} == RECORD


@pytest.mark.parametrize(("address", "private"), [
    ("10.1.2.3", True), ("172.31.255.255", True), ("172.32.0.1", False), ("192.168.0.9", True),
    ("127.0.0.1", True), ("169.254.1.1", True), ("100.64.0.1", True), ("::1", True), ("fd00::1", True),
    ("fe80::1", True), ("8.8.8.8", False), ("2001:4860::8888", False), ("not-an-address", False),
])
def test_private_addresses_are_tagged_and_public_ones_are_not(address: str, private: bool) -> None:
    record = {**RECORD, "request": {**RECORD["request"], "ip": address}}
    document = mirror.shape(json.dumps(record), "app.jsonl", 0, READ_AT)
    assert ("private_ip" in document.get("tags", [])) is private
    assert "geoip" not in document  # the lookup is Logstash's: the mirror never invents one


def test_a_line_that_is_not_json_is_kept_and_tagged() -> None:
    document = mirror.shape("Traceback (most recent call last):", "app.jsonl", 10, READ_AT)
    assert document["message"] == "Traceback (most recent call last):"
    assert document["tags"] == ["unparsable_line"]
    assert document["log_parse_error"]["type"] == "json"
    assert "error" not in document  # `error` stays the app's exception
    assert document["@timestamp"] == "2026-12-31T23:59:59.999Z"  # no time of its own: when it was read
    assert mirror.index_name(document) == "app-logs-2026.12.31"


def test_an_unreadable_time_keeps_the_read_time_and_is_tagged() -> None:
    document = mirror.shape(json.dumps({**RECORD, "timestamp": "yesterday"}), "app.jsonl", 0, READ_AT)
    assert document["@timestamp"] == "2026-12-31T23:59:59.999Z"
    assert document["tags"] == ["_dateparsefailure", "private_ip"]


def test_an_app_record_with_an_error_is_not_taken_for_an_unparsable_line() -> None:
    record = {**RECORD, "error": {"type": "json", "message": "the app's own exception", "stack_trace": "..."}}
    document = mirror.shape(json.dumps(record), "app.jsonl", 0, READ_AT)
    assert document["error"] == record["error"]
    assert "unparsable_line" not in document["tags"]
