"""logstash/: settings, the pipeline's shape, and its agreement with Filebeat, the records and the index.

Logstash cannot run here: `logstash_config.py` checks the pipeline's syntax (strings closed, braces
paired, plugins and settings well formed) and these tests check what it says. The real syntax check
needs Docker: `docker compose run --rm --no-deps logstash --config.test_and_exit
--path.data=/tmp/config-test` (tests/e2e/test_compose_stack.py runs it).

The compose healthcheck is run for real, under sh with this machine's curl and grep, against a local
server that answers GET /_health_report with the bodies in logstash_health_report/. Those are built
from Logstash 9.5's source (not captured from a running Logstash): the API module
logstash-core/lib/logstash/api/modules/health_report.rb, the JSON serializers of
org.logstash.health (ApiHealthReport, MultiIndicator, ProbeIndicator, PipelineIndicator) and the
agent's pipeline states (logstash/agent.rb#pipeline_details), in the compact form the API writes
without ?pretty.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.static.elk.logstash_config import ConfigError, Pipeline, iter_plugins, parse
from tests.static.elk.stack_files import REPO, leaf_fields, load_json, load_yaml, readme_log_fields

PIPELINE_FILE = REPO / "logstash" / "pipeline" / "app-logs.conf"
# The pipeline directory's path in the image (docker-compose.yml mounts ./logstash/pipeline there).
IMAGE_PIPELINE_DIR = PurePosixPath("/usr/share/logstash/pipeline")
HEALTH_REPORTS = Path(__file__).resolve().parent / "logstash_health_report"
# Where the healthcheck asks, inside the container (logstash.yml: api.http.host, api.http.port).
API_ADDRESS = "127.0.0.1:9600"
# Settings of logstash.yml verified against Logstash 9's settings reference: Logstash refuses to start
# on a setting it does not know, so a typo here is fatal.
KNOWN_SETTINGS = {
    "node.name", "path.data", "pipeline.ecs_compatibility", "pipeline.workers", "pipeline.batch.size",
    "pipeline.ordered", "api.enabled", "api.http.host", "api.http.port", "xpack.geoip.downloader.enabled",
    "xpack.monitoring.enabled", "log.level", "log.format", "config.reload.automatic", "queue.type",
    "queue.max_bytes", "dead_letter_queue.enable", "dead_letter_queue.max_bytes",
}


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return parse(PIPELINE_FILE.read_text())


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return load_yaml("logstash/config/logstash.yml")


@pytest.fixture(scope="module")
def pipelines() -> list[dict[str, Any]]:
    return load_yaml("logstash/config/pipelines.yml")


@pytest.mark.parametrize("broken", [
    'input { beats { port => 5044 }',
    'input { beats { port => "5044 } }',
    'filter { if [a] { mutate { add_tag => ["x" } } }',
    'output { elasticsearch { hosts => } }',
    'filters { }',
])
def test_the_syntax_check_catches_broken_pipelines(broken: str) -> None:
    with pytest.raises(ConfigError):
        parse(broken)


def test_the_pipeline_parses_into_the_three_sections(pipeline: Pipeline) -> None:
    assert list(pipeline.sections) == ["input", "filter", "output"]
    ids = [plugin.settings.get("id") for _, plugin in iter_plugins(pipeline)]
    assert None not in ids, "every plugin has an id: node stats and logs name it"
    assert len(ids) == len(set(ids))


def test_comments_hold_no_variable_references(pipeline: Pipeline) -> None:
    # Logstash may substitute ${...} even in comments, and fails on an unknown variable.
    assert [comment for comment in pipeline.comments if "${" in comment] == []


def test_settings_are_known_and_decided(settings: dict[str, Any], pipelines: list[dict[str, Any]]) -> None:
    assert set(settings) <= KNOWN_SETTINGS, set(settings) - KNOWN_SETTINGS
    assert settings["pipeline.ecs_compatibility"] == "disabled", "ECS mode writes [event][original]"
    assert settings["xpack.geoip.downloader.enabled"] is False
    assert settings.get("xpack.monitoring.enabled", False) is False
    assert settings["api.http.host"] == "127.0.0.1", "the API has no authentication"
    assert settings["api.http.port"] == 9600
    for entry in pipelines:
        assert set(entry) - {"pipeline.id", "path.config"} <= KNOWN_SETTINGS


def test_one_pipeline_with_a_persistent_queue(pipelines: list[dict[str, Any]]) -> None:
    [entry] = pipelines
    assert entry["pipeline.id"] == "app-logs"
    config_path = PurePosixPath(entry["path.config"])
    assert config_path.parent == IMAGE_PIPELINE_DIR
    assert (REPO / "logstash" / "pipeline" / config_path.name) == PIPELINE_FILE
    assert entry["queue.type"] == "persisted"
    assert re.fullmatch(r"\d+(mb|gb)", entry["queue.max_bytes"])
    assert entry["dead_letter_queue.enable"] is True


def test_beats_come_in_on_5044_without_enrichment(pipeline: Pipeline) -> None:
    [beats] = pipeline.sections["input"]
    assert beats.name == "beats"
    assert beats.settings["port"] == "5044"
    assert load_yaml("filebeat/filebeat.yml")["output.logstash"]["hosts"] == ["logstash:5044"]
    assert beats.settings["enrich"] == "none", "the input would add [host] or [event][original]"


def test_nothing_is_ever_dropped(pipeline: Pipeline) -> None:
    assert [plugin.name for _, plugin in iter_plugins(pipeline) if plugin.name == "drop"] == []


def test_undecodable_lines_are_tagged_by_filebeats_error_key(pipeline: Pipeline) -> None:
    ndjson = load_yaml("filebeat/filebeat.yml")["filebeat.inputs"][0]["parsers"][0]["ndjson"]
    assert ndjson["add_error_key"] is True
    [tagger] = [p for p in pipeline.plugins("filter", "mutate") if "unparsable_line" in p.settings.get("add_tag", [])]
    assert tagger.conditions == ['[error][type] == "json" and ![timestamp]']
    assert tagger.settings["rename"] == {"[error]": "[log_parse_error]"}
    mapping = load_json("elasticsearch/index-template.json")["template"]["mappings"]["properties"]
    assert "log_parse_error" in mapping


def test_the_record_time_becomes_the_event_time(pipeline: Pipeline, app_records: list[dict[str, Any]]) -> None:
    date = pipeline.plugin("filter", "date")
    field, pattern = date.settings["match"]
    assert pattern == "ISO8601"
    assert date.settings.get("target", "@timestamp") == "@timestamp"
    assert date.conditions == [f"[{field}]"]
    for record in app_records:
        stamp = datetime.fromisoformat(record[field])
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00", record[field])


def test_geoip_looks_up_the_client_address_of_access_records(pipeline: Pipeline,
                                                              records_by_event: dict[str, Any]) -> None:
    geoip = pipeline.plugin("filter", "geoip")
    assert geoip.settings["source"] == "[request][ip]"
    assert geoip.settings["target"] == "geoip"
    assert geoip.conditions[0] == "[request][ip]"
    for record in records_by_event["api_access"]:
        assert record["request"]["ip"]
    mapping = load_json("elasticsearch/index-template.json")["template"]["mappings"]["properties"]
    assert mapping["geoip"]["properties"]["location"]["type"] == "geo_point"


def test_private_clients_are_tagged_not_looked_up(pipeline: Pipeline) -> None:
    cidr = pipeline.plugin("filter", "cidr")
    assert cidr.settings["address"] == ["%{[request][ip]}"]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128"} <= set(cidr.settings["network"])
    assert cidr.settings["add_tag"] == ["private_ip"]
    assert pipeline.plugin("filter", "geoip").conditions[1] == '"private_ip" not in [tags]'


def test_only_shipping_noise_is_removed(pipeline: Pipeline, app_records: list[dict[str, Any]]) -> None:
    [remover] = [p for p in pipeline.plugins("filter", "mutate") if "remove_field" in p.settings]
    removed = {re.sub(r"\]\[", ".", name).strip("[]") for name in remover.settings["remove_field"]}
    app_fields = readme_log_fields() | {path for record in app_records for path, _ in leaf_fields(record)}
    app_roots = {path.split(".")[0] for path in app_fields}
    assert removed & app_fields == set()
    assert {name for name in removed if "." not in name} & app_roots == set()
    assert "log.file.path" not in removed and "log.offset" not in removed


def test_the_output_writes_daily_indices_the_template_covers(pipeline: Pipeline) -> None:
    [output] = pipeline.sections["output"]
    assert output.name == "elasticsearch"
    index = output.settings["index"]
    assert index == "app-logs-%{+yyyy.MM.dd}"
    assert "YYYY" not in index, "YYYY is the week-based year"
    template = load_json("elasticsearch/index-template.json")
    assert re.fullmatch(template["index_patterns"][0].replace("*", ".*"), index.replace("%{+yyyy.MM.dd}", "2026.01.01"))
    assert output.settings["manage_template"] == "false"
    assert output.settings["ilm_enabled"] == "false"
    assert output.settings["data_stream"] == "false"


def test_the_output_authenticates_as_the_writer_and_only_creates(pipeline: Pipeline) -> None:
    output = pipeline.plugin("output", "elasticsearch")
    assert output.settings["user"] == "logstash_writer"
    assert output.settings["password"] == "${LOGSTASH_WRITER_PASSWORD}"
    assert output.settings["action"] == "create", "the role grants create_doc, not index"
    role = load_json("elasticsearch/roles/logstash_writer.json")
    assert "create_doc" in role["indices"][0]["privileges"]
    [host] = output.settings["hosts"]
    assert re.fullmatch(r"\$\{ELASTICSEARCH_URL:http://elasticsearch:9200\}", host)
    assert "api_key" not in output.settings, "API keys need TLS"


def test_every_variable_the_pipeline_needs_is_known() -> None:
    variables = set(re.findall(r"\$\{([A-Z_]+)[:}]", PIPELINE_FILE.read_text()))
    assert variables == {"ELASTICSEARCH_URL", "LOGSTASH_WRITER_PASSWORD"}
    example = (REPO / ".env.example").read_text()
    assert re.search(r"^LOGSTASH_WRITER_PASSWORD=", example, re.MULTILINE)


# --- the healthcheck --------------------------------------------------------------------------------


class FakeLogstashApi:
    """Logstash's HTTP API as a healthcheck sees it: GET /_health_report answers `report` (compact
    JSON, as Logstash writes it without ?pretty) with `status`; GET / the node's information, 200
    whatever the pipelines do (the old check asked only that); any other path is a 404."""

    def __init__(self) -> None:
        self.report: Any = {}
        self.status = 200
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.paths.append(self.path)
                if self.path == "/_health_report":
                    status, body = fake.status, fake.report
                elif self.path == "/":
                    status, body = 200, {k: v for k, v in fake.report.items() if k not in ("symptom", "indicators")}
                else:
                    status, body = 404, {"path": self.path, "status": 404}
                payload = json.dumps(body, separators=(",", ":")).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def logstash_api() -> Iterator[FakeLogstashApi]:
    api = FakeLogstashApi()
    yield api
    api.close()


def healthcheck_script() -> str:
    test = load_yaml("docker-compose.yml")["services"]["logstash"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and len(test) == 2, test
    return test[1].replace("$$", "$")  # compose's escape of a literal $


def run_healthcheck(api_address: str) -> int:
    """The healthcheck's exit status, its API address swapped for `api_address`."""
    script = healthcheck_script().replace(API_ADDRESS, api_address)
    env = {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, timeout=30, check=False).returncode


def test_the_healthcheck_asks_the_api_about_the_pipeline_of_pipelines_yml(
        settings: dict[str, Any], pipelines: list[dict[str, Any]]) -> None:
    script = healthcheck_script()
    assert f"{settings['api.http.host']}:{settings['api.http.port']}" == API_ADDRESS
    assert f"http://{API_ADDRESS}/_health_report" in script
    [entry] = pipelines
    assert f'"{entry["pipeline.id"]}":' in script


@pytest.mark.parametrize(("report", "is_healthy"), [
    ("running", True),
    # Back-pressure (Elasticsearch slow or away) turns a running pipeline red through its worker
    # utilisation; the beats input still takes Filebeat's connections, and Filebeat waits.
    ("running_blocked", True),
    # The API answers while the pipeline still compiles and starts its input: the old check's window.
    ("loading", False),
    ("terminated", False),
    # Before the pipeline is created: no pipeline indicator, and the top-level status is green.
    ("no_pipeline_yet", False),
    # The image's own pipelines.yml (pipeline `main`) instead of ours.
    ("only_the_image_default_main", False),
    # Another pipeline's state after ours must not count for ours.
    ("loading_beside_a_running_one", False),
])
def test_the_healthcheck_passes_only_once_the_pipeline_runs(logstash_api: FakeLogstashApi, report: str,
                                                            is_healthy: bool) -> None:
    logstash_api.report = json.loads((HEALTH_REPORTS / f"{report}.json").read_text())
    assert (run_healthcheck(logstash_api.address) == 0) is is_healthy
    assert logstash_api.paths == ["/_health_report"]


def test_the_healthcheck_fails_when_the_api_does_not_answer_the_report(logstash_api: FakeLogstashApi) -> None:
    logstash_api.report = json.loads((HEALTH_REPORTS / "running.json").read_text())
    logstash_api.status = 500
    assert run_healthcheck(logstash_api.address) != 0
    address = logstash_api.address
    logstash_api.close()
    assert run_healthcheck(address) != 0
