"""Both shippers' configurations against the shaping table's rules (tests/support/log_shaping.py).

Logstash cannot run here, so its pipeline is held to the rules statically, filter by filter; the
OpenTelemetry Collector runs, and the end-to-end suite checks its documents against the table itself
(tests/e2e/test_log_shipping.py), while this file checks that its configuration says the same
networks, tags, index and delivery settings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.static.elk.logstash_config import Pipeline, parse
from tests.support import log_shaping as rules

REPO = Path(__file__).resolve().parents[3]
COLLECTOR = REPO / "extensions" / "otel-collector" / "collector.yaml"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return parse((REPO / "logstash" / "pipeline" / "app-logs.conf").read_text())


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return yaml.safe_load(COLLECTOR.read_text())


def _filter(pipeline: Pipeline, plugin_id: str) -> Any:
    (found,) = [p for p in pipeline.sections["filter"] if p.settings.get("id") == plugin_id]
    return found


def test_the_pipeline_applies_the_rules_in_their_order(pipeline: Pipeline) -> None:
    ids = tuple(p.settings.get("id") for p in pipeline.sections["filter"])
    assert ids == ("unparsable_line", "record_time", "private_client", "client_geo", "shipping_noise")

    unparsable = _filter(pipeline, "unparsable_line")
    assert unparsable.conditions == ['[error][type] == "json" and ![timestamp]']
    assert unparsable.settings["rename"] == {"[error]": "[log_parse_error]"}
    assert unparsable.settings["add_tag"] == [rules.UNPARSABLE_TAG]

    date = _filter(pipeline, "record_time")
    assert date.name == "date" and date.conditions == ["[timestamp]"]
    assert date.settings["match"] == ["timestamp", "ISO8601"]
    assert date.settings["target"] == "@timestamp"
    assert date.settings["tag_on_failure"] == [rules.DATE_FAILURE_TAG]

    cidr = _filter(pipeline, "private_client")
    assert cidr.name == "cidr" and cidr.conditions == ["[request][ip]"]
    assert cidr.settings["address"] == ["%{[request][ip]}"]
    assert cidr.settings["network"] == list(rules.PRIVATE_NETWORKS)
    assert cidr.settings["add_tag"] == [rules.PRIVATE_TAG]
    # The geoip lookup (Logstash's alone: a public client's place) runs only where cidr did not tag.
    assert _filter(pipeline, "client_geo").conditions == ["[request][ip]", f'"{rules.PRIVATE_TAG}" not in [tags]']

    noise = _filter(pipeline, "shipping_noise")
    assert noise.conditions == []
    assert noise.settings["remove_field"] == ["agent", "ecs", "input", "host", "@version", "[log][file][device_id]",
                                              "[log][file][inode]", "[log][file][fingerprint]"]

    output = pipeline.plugin("output", "elasticsearch")
    assert output.settings["index"] == f"{rules.INDEX_PREFIX}%{{+yyyy.MM.dd}}"
    assert output.settings["action"] == "create"


def test_filebeat_decodes_json_objects_into_the_event_and_keeps_every_other_line() -> None:
    config = yaml.safe_load((REPO / "filebeat" / "filebeat.yml").read_text())
    (app_input,) = config["filebeat.inputs"]
    (parser,) = app_input["parsers"]
    assert parser["ndjson"] == {"target": "", "overwrite_keys": True, "add_error_key": True, "expand_keys": False}


def _statements(collector: dict[str, Any]) -> list[str]:
    groups = collector["processors"]["transform/shape"]["log_statements"]
    return [statement for group in groups for statement in group["statements"]]


def test_the_collector_states_the_same_networks_tags_and_index(collector: dict[str, Any]) -> None:
    statements = "\n".join(_statements(collector))
    (networks,) = re.findall(r"IsInCIDR\(log\.body\[\"request\"\]\[\"ip\"\], \[([^\]]*)\]\)", statements)
    assert tuple(re.findall(r'"([^"]+)"', networks)) == rules.PRIVATE_NETWORKS
    for tag in (rules.PRIVATE_TAG, rules.DATE_FAILURE_TAG, rules.UNPARSABLE_TAG):
        assert f'"{tag}"' in statements, tag
    assert f'Concat(["{rules.INDEX_PREFIX}", FormatTime(log.time, "%Y.%m.%d")], "")' in statements
    assert 'set(scope.attributes["elastic.mapping.mode"], "bodymap")' in statements  # the body is the document


def test_the_collector_neither_loses_nor_doubles_lines_across_a_crash(collector: dict[str, Any]) -> None:
    receiver = collector["receivers"]["file_log"]
    assert receiver["storage"] == "file_storage" and receiver["start_at"] == "beginning"
    exporter = collector["exporters"]["elasticsearch"]
    assert exporter["sending_queue"]["storage"] == "file_storage", "an in-memory queue dies with the process"
    assert exporter["logs_dynamic_id"] == {"enabled": True}
    # A document sent again after a crash lands on itself (create: refused as a duplicate).
    assert any("elasticsearch.document_id" in s for s in _statements(collector))
    (pipeline,) = collector["service"]["pipelines"].values()
    assert not any(p.startswith("batch") for p in pipeline["processors"]), "a batch processor holds lines in memory"
