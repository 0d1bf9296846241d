"""extensions/loki: the compose fragment, Loki's and Alloy's configs and Grafana's Loki data source fit
the core stack (volume, log file, user, data sources), publish nothing beyond 127.0.0.1, and keep
per-request values out of Loki's labels."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
EXTENSION = REPO / "extensions" / "loki"
FRAGMENT = EXTENSION / "docker-compose.loki.yml"
ALLOY_CONFIG = EXTENSION / "alloy" / "config.alloy"
# Values with one stream each per request or task: never labels.
PER_REQUEST = {"request_id", "trace_id", "span_id", "user_id", "task_id"}
# The labels chosen, each with a handful of values (README: Log records).
LOW_CARDINALITY = {"service_name", "environment", "level", "layer", "category", "event"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def fragment() -> dict[str, Any]:
    return _yaml(FRAGMENT)


@pytest.fixture(scope="module")
def core() -> dict[str, Any]:
    return _yaml(REPO / "docker-compose.yml")


@pytest.fixture(scope="module")
def alloy() -> str:
    """The Alloy config without its comments (`//` after a blank or at a line's start: not in URLs)."""
    return re.sub(r"(^|\s)//.*$", "", ALLOY_CONFIG.read_text(), flags=re.MULTILINE)


def _block(text: str, header: str) -> str:
    """The body of the first block whose header matches `header` (a regex ending before `{`)."""
    match = re.search(header + r"\s*\{", text)
    assert match, f"no block {header!r}"
    depth, start = 1, match.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    raise AssertionError(f"unbalanced braces after {header!r}")


def _keys(body: str, attribute: str) -> dict[str, str]:
    """The entries of a map attribute (`attribute = { key = "value", ... }`)."""
    inner = _block(body, rf"\b{attribute}\s*=")
    return dict(re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"', inner, flags=re.MULTILINE))


def _ports(service: dict[str, Any]) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def _variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)", text))


def test_fragment_adds_loki_and_alloy_and_extends_grafana(fragment: dict[str, Any]) -> None:
    assert set(fragment["services"]) == {"loki", "alloy", "grafana"}
    assert set(fragment["volumes"]) == {"loki-data", "alloy-data"}


def test_images_are_pinned_by_the_env_file(fragment: dict[str, Any]) -> None:
    assert fragment["services"]["loki"]["image"].startswith("grafana/loki:${LOKI_VERSION:?")
    assert fragment["services"]["alloy"]["image"].startswith("grafana/alloy:v${ALLOY_VERSION:?")


def test_every_variable_the_fragment_uses_is_in_env_example() -> None:
    defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), flags=re.MULTILINE))
    used = _variables(FRAGMENT.read_text())
    assert used, "no variables found"
    assert used <= defined, sorted(used - defined)


def test_published_ports_are_loopback_only(fragment: dict[str, Any]) -> None:
    published = [port for service in fragment["services"].values() for port in _ports(service)]
    assert published, "loki's API is published for the host"
    assert all(port.startswith("127.0.0.1:") for port in published), published
    assert not _ports(fragment["services"]["alloy"])


def test_services_are_healthchecked_limited_and_not_root(fragment: dict[str, Any]) -> None:
    for name in ("loki", "alloy"):
        service = fragment["services"][name]
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["mem_limit"], name
        assert service["restart"] == "unless-stopped", name
        user = str(service["user"]).split(":")[0]
        assert user not in {"", "0", "root"}, name


def test_alloy_reads_the_apps_log_file_read_only_as_the_apps_group(
        fragment: dict[str, Any], core: dict[str, Any], alloy: str) -> None:
    service = fragment["services"]["alloy"]
    assert "app-logs:/var/log/app:ro" in service["volumes"]
    assert "app-logs" in core["volumes"]
    app = core["services"]["app"]
    assert any(volume.startswith("app-logs:/var/log/app") for volume in app["volumes"])
    # The app's group may read its log files (mode 0640).
    assert str(app["user"]).split(":")[1] in [str(group) for group in service["group_add"]]
    targets = re.findall(r'__path__\s*=\s*"([^"]+)"', _block(alloy, r'local\.file_match\s+"app"'))
    # The live file only: a pattern over the rotated names would ship each rotated file again.
    assert targets == [core["x-service-env"]["LOG_FILE"]]


def test_host_paths_exist_relative_to_the_project_directory(fragment: dict[str, Any]) -> None:
    for service in fragment["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).is_file(), source


def test_grafanas_core_mounts_leave_room_for_the_loki_data_source(
        fragment: dict[str, Any], core: dict[str, Any]) -> None:
    """Docker cannot create a mount point inside a read-only bind mount: the core grafana service must
    mount its provisioning files one by one, not a folder above the Loki data source's target."""
    (loki_target,) = [volume.split(":")[1] for volume in fragment["services"]["grafana"]["volumes"]]
    assert loki_target.startswith("/etc/grafana/provisioning/datasources/")
    for volume in core["services"]["grafana"]["volumes"]:
        source, target, *options = volume.split(":")
        if source.startswith(".") and (REPO / source).is_dir() and "ro" in options:
            assert not loki_target.startswith(target.rstrip("/") + "/"), (
                f"docker-compose.yml mounts {source} read-only at {target}: mount "
                "grafana/provisioning/datasources/datasources.yml and dashboards/dashboards.yml as files instead")


def test_loki_is_a_single_filesystem_process_with_retention(fragment: dict[str, Any]) -> None:
    config = _yaml(EXTENSION / "loki" / "config.yaml")
    # Documented in the config and the README: only reachable from the compose network and loopback.
    assert config["auth_enabled"] is False
    assert config["common"]["replication_factor"] == 1
    assert config["common"]["storage"]["filesystem"]
    (schema,) = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["object_store"]) == ("tsdb", "v13", "filesystem")
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    assert config["limits_config"]["retention_period"]
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["analytics"]["reporting_enabled"] is False
    port = config["server"]["http_listen_port"]
    assert all(p.endswith(f":{port}") for p in _ports(fragment["services"]["loki"]))
    assert "/loki" in [volume.split(":")[1] for volume in fragment["services"]["loki"]["volumes"]]


def test_alloy_labels_are_low_cardinality_and_ids_are_structured_metadata(alloy: str) -> None:
    process = _block(alloy, r'loki\.process\s+"app"')
    labels = set(_keys(_block(process, r"stage\.labels"), "values"))
    assert labels, "no labels found: the parse is broken"
    assert not labels & PER_REQUEST, sorted(labels & PER_REQUEST)
    assert labels <= LOW_CARDINALITY, sorted(labels - LOW_CARDINALITY)
    assert "stage.static_labels" not in process
    metadata = set(_keys(_block(process, r"stage\.structured_metadata"), "values"))
    assert {"trace_id", "request_id"} <= metadata
    timestamp = _block(process, r"stage\.timestamp")
    assert re.search(r'source\s*=\s*"timestamp"', timestamp)
    assert re.search(r'format\s*=\s*"RFC3339Nano"', timestamp)


def _record_fields() -> dict[str, set[str]]:
    """The README's Log records table: each field with its subfields (`service` -> {name, ...})."""
    table = (REPO / "README.md").read_text().split("\n## Log records\n", 1)[1].split("\n## ", 1)[0]
    fields: dict[str, set[str]] = {}
    for names, meaning in re.findall(r"^\| (`.+?`) \|[^|]*\|([^|]*)\|$", table, flags=re.MULTILINE):
        subfields = re.search(r"`\{([^}]*)\}`", meaning)
        for name in re.findall(r"`(\w+)`", names):
            fields[name] = set(subfields[1].replace(" ", "").split(",")) if subfields else set()
    return fields


def test_alloy_extracts_only_fields_the_app_writes(alloy: str) -> None:
    fields = _record_fields()
    assert {"timestamp", "level", "trace_id"} <= set(fields) and "name" in fields["service"]
    expressions = _keys(_block(_block(alloy, r'loki\.process\s+"app"'), r"stage\.json"), "expressions")
    assert expressions, "no expressions found: the parse is broken"
    for key, expression in expressions.items():
        field, *sub = (expression or key).split(".")
        assert field in fields, f"{key}: {field} is not a field of the app's records"
        assert set(sub) <= fields[field], f"{key}: {expression}"


def test_alloy_components_refer_to_defined_components_and_push_to_loki(alloy: str) -> None:
    defined = {f"{kind}.{label}" for kind, label in re.findall(r'^([a-z_]+(?:\.[a-z_]+)+)\s+"(\w+)"\s*\{', alloy,
                                                               flags=re.MULTILINE)}
    assert {"local.file_match.app", "loki.source.file.app", "loki.process.app", "loki.write.loki"} <= defined
    referenced = set(re.findall(r"\b((?:local|loki)\.[a-z_.]+\.\w+)\.(?:receiver|targets)\b", alloy))
    assert referenced, "no references found: the parse is broken"
    assert referenced <= defined, sorted(referenced - defined)
    assert alloy.count("{") == alloy.count("}")
    config = _yaml(EXTENSION / "loki" / "config.yaml")
    assert re.search(rf'url\s*=\s*"http://loki:{config["server"]["http_listen_port"]}/loki/api/v1/push"', alloy)


def test_grafanas_loki_data_source_links_trace_ids_to_jaeger(alloy: str) -> None:
    document = _yaml(EXTENSION / "grafana" / "datasource-loki.yml")
    (loki,) = document["datasources"]
    assert (loki["uid"], loki["type"], loki["url"]) == ("loki", "loki", "http://loki:3100")
    core = _yaml(REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml")["datasources"]
    assert loki["uid"] not in {ds["uid"] for ds in core}
    jaeger_uid = next(ds["uid"] for ds in core if ds["type"] == "jaeger")
    (field,) = loki["jsonData"]["derivedFields"]
    assert field["datasourceUid"] == jaeger_uid
    # Read from the structured metadata Alloy attaches, not by a regex over the line.
    assert field["matcherType"] == "label"
    metadata = _keys(_block(_block(alloy, r'loki\.process\s+"app"'), r"stage\.structured_metadata"), "values")
    assert field["matcherRegex"] in metadata
    assert field["url"] == "$${__value.raw}"


def test_readme_shows_how_to_enable_and_remove_it() -> None:
    readme = (EXTENSION / "README.md").read_text()
    assert "docker compose -f docker-compose.yml -f extensions/loki/docker-compose.loki.yml up" in readme
    assert "delete this\nfolder" in readme or "delete this folder" in readme
