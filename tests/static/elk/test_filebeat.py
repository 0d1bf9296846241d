"""filebeat/filebeat.yml: reads the app's log file and its rotated copies, and hands Logstash whole records.

Filebeat cannot run here; the settings are checked against Filebeat 9's documented behaviour and
against lines the real app writes. In Docker, `filebeat test config` and `filebeat test output` are
the real checks (the compose healthcheck runs the latter).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePosixPath
from typing import Any

import pytest

from tests.static.elk.stack_files import LOG_FILE, REPO, load_yaml

# Filebeat's smallest accepted fingerprint length (filestream docs: "length cannot be less than 64").
MIN_FINGERPRINT_LENGTH = 64


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_yaml("filebeat/filebeat.yml")


@pytest.fixture(scope="module")
def app_input(config: dict[str, Any]) -> dict[str, Any]:
    inputs = config["filebeat.inputs"]
    assert len(inputs) == 1, "one input: the app's log file"
    return inputs[0]


def scanner(app_input: dict[str, Any], key: str, default: Any = None) -> Any:
    """A prospector.scanner option, written nested or dotted."""
    nested = app_input.get("prospector.scanner", {})
    return nested.get(key, app_input.get(f"prospector.scanner.{key}", default))


def harvested(app_input: dict[str, Any], path: str) -> bool:
    """Whether Filebeat would read `path`: a glob of `paths` matches it and no exclude_files regex does."""
    matched = any(fnmatch.fnmatchcase(path, pattern) for pattern in app_input["paths"])
    excluded = any(re.search(regex, path) for regex in scanner(app_input, "exclude_files", []))
    return matched and not excluded


def test_the_input_is_filestream_with_a_stable_id(app_input: dict[str, Any]) -> None:
    assert app_input["type"] == "filestream", "the log input errors in Filebeat 9"
    assert isinstance(app_input["id"], str)
    assert re.fullmatch(r"[a-z0-9-]+", app_input["id"])


def test_the_active_file_and_every_rotated_copy_are_read_but_not_the_lock(app_input: dict[str, Any]) -> None:
    log_dir = PurePosixPath(LOG_FILE).parent
    assert harvested(app_input, LOG_FILE)
    # SharedRotatingFileHandler renames app.jsonl -> app.jsonl.1 ... app.jsonl.<LOG_FILE_BACKUPS>.
    for index in range(1, 10):
        assert harvested(app_input, f"{LOG_FILE}.{index}")
    assert not harvested(app_input, f"{LOG_FILE}.lock"), "the rotation lock file holds no records"
    assert not harvested(app_input, str(log_dir / "other.log"))


def test_compose_gives_the_app_the_log_file_filebeat_reads(app_input: dict[str, Any]) -> None:
    compose_file = REPO / "docker-compose.yml"
    if not compose_file.exists():
        pytest.skip("docker-compose.yml is not in the tree yet")
    services = load_yaml("docker-compose.yml")["services"]
    for name in ("app", "worker"):
        log_file = services[name]["environment"]["LOG_FILE"]
        assert log_file == LOG_FILE
        assert harvested(app_input, log_file)


def test_files_are_identified_by_content_so_renames_keep_their_offset(app_input: dict[str, Any]) -> None:
    identities = {key.split(".", 1)[1] for key in app_input if key.startswith("file_identity.")}
    identities.update(app_input.get("file_identity") or {})
    # Fingerprint is also 9.x's default; path identity would read every renamed file again.
    assert identities <= {"fingerprint"}
    assert scanner(app_input, "fingerprint", {}).get("enabled", True) is True
    assert app_input.get("close.on_state_change.renamed", False) is False, "the tail of rotated files would be lost"
    assert app_input.get("clean_removed", True) is True


def test_one_record_is_enough_to_identify_and_read_a_new_file(app_input: dict[str, Any],
                                                              app_log_lines: list[str]) -> None:
    fingerprint = scanner(app_input, "fingerprint", {})
    offset, length = fingerprint.get("offset", 0), fingerprint.get("length", 1024)
    assert length >= MIN_FINGERPRINT_LENGTH
    shortest = min(len(line.encode()) + 1 for line in app_log_lines)
    assert offset + length <= shortest, "a file with one record would wait for more before being read"
    for line in app_log_lines:
        head = line.encode()[offset:offset + length].decode()
        timestamp = re.match(r'\{"timestamp":"([^"]+)"', line)
        assert timestamp is not None, "every record starts with its timestamp"
        assert timestamp.group(0) in head, "two files must not share a fingerprint: it holds the whole timestamp"


def test_lines_are_decoded_as_json_at_the_root_and_failures_are_marked(app_input: dict[str, Any]) -> None:
    parsers = app_input["parsers"]
    assert [next(iter(parser)) for parser in parsers] == ["ndjson"]
    ndjson = parsers[0]["ndjson"]
    assert ndjson["target"] == ""
    assert ndjson["overwrite_keys"] is True, "the record's message must replace the raw line"
    assert ndjson["add_error_key"] is True, "Logstash tags undecodable lines by Filebeat's error.type"
    assert ndjson["expand_keys"] is False
    assert "message_key" not in ndjson
    assert "document_id" not in ndjson, "it would take a field out of the record"


def test_the_app_writes_nested_objects_and_no_dotted_keys(app_records: list[dict[str, Any]]) -> None:
    # Why expand_keys stays off: nothing to expand.
    def keys(value: Any) -> list[str]:
        if not isinstance(value, dict):
            return []
        return [key for k, v in value.items() for key in (k, *keys(v))]

    assert [key for record in app_records for key in keys(record) if "." in key] == []
    assert any(isinstance(record.get("request"), dict) for record in app_records)


def test_events_go_to_logstash_only(config: dict[str, Any]) -> None:
    outputs = [key for key in config if key.startswith("output.")]
    assert outputs == ["output.logstash"]
    assert config["output.logstash"]["hosts"] == ["logstash:5044"]


def test_no_cloud_or_host_metadata_and_no_monitoring_shipping(config: dict[str, Any]) -> None:
    text = (REPO / "filebeat" / "filebeat.yml").read_text()
    for processor in ("add_cloud_metadata", "add_docker_metadata", "add_host_metadata", "add_kubernetes_metadata"):
        assert not re.search(rf"^\s*-\s*{processor}\s*:", text, re.MULTILINE)
    assert "processors" not in config and "processors" not in config["filebeat.inputs"][0]
    assert config.get("monitoring.enabled", False) is False
    if config.get("http.enabled"):
        assert config.get("http.host", "localhost") in ("localhost", "127.0.0.1")


def test_the_registry_is_under_the_data_path(config: dict[str, Any]) -> None:
    # docker-compose.yml mounts the filebeat-data volume at the image's path.data.
    registry = config.get("filebeat.registry.path", "${path.data}/registry")
    assert registry.startswith("${path.data}/") or not registry.startswith("/")
