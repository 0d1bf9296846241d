"""docker-compose.yml, checked without a Docker engine.

compose-check (tools/compose, built by tools/build.sh) loads the file with compose-go, the loader of
`docker compose` itself: schema validation, interpolation with a .env made from .env.example, merging
of the optional fragments, normalisation. The rules below then hold the stack to its promises:
pinned images, healthchecks and ordered start-up, loopback-only ports, no secret with a default,
memory within the documented budget, rotated logs, no root where the image allows.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.compose import PUBLISHED_PORTS
from sandbox.doctor import COMPOSE_MEMORY_BUDGET_MIB
from sandbox.env import SECRET_SUFFIXES, fill_secrets, parse_env
from tests.support.services import POSTGRES_IMAGE, REDIS_IMAGE
from tests.support.tools import tool_path

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# Optional fragments: each must load on top of the core file.
FRAGMENTS = [REPO / "jaeger" / "compose.elasticsearch.yml", REPO / "extensions" / "loki" / "docker-compose.loki.yml",
             REPO / "extensions" / "otel-collector" / "docker-compose.otel-collector.yml"]

APP_IMAGE = "observability-stack/app:local"  # built from app/Dockerfile by the `app` service
# The ports of the app's and the worker's metrics listeners: reachable by Prometheus, never published.
METRICS_PORTS = {9464, 9465}
# Services that may run as the image's default user, and why. None today: every image has a
# non-root user to name.
USER_EXCEPTIONS: dict[str, str] = {}
# Absolute host paths a service may mount, and why.
HOST_MOUNTS = {("node-exporter", "/"): "node-exporter reads the host's /proc, /sys and filesystems (read-only)"}
# Dependencies that wait for less than health, and why.
START_ONLY_DEPENDENCIES: dict[tuple[str, str], str] = {}
HEALTHY, COMPLETED = "service_healthy", "service_completed_successfully"
_REFERENCE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")


def run_compose_check(env_file: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    command = [str(tool_path("compose-check")), "-env-file", str(env_file), "-project-dir", str(REPO),
               *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def load(env_file: Path, *files: Path) -> dict[str, Any]:
    done = run_compose_check(env_file, *files)
    assert done.returncode == 0, f"compose-check refused {[f.name for f in files]}:\n{done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return parse_env(ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .env as `make up` writes it: .env.example with every secret filled."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text(fill_secrets(ENV_EXAMPLE.read_text(), lambda: "dummy-secret-for-compose-check-0123456789"))
    return path


@pytest.fixture(scope="module")
def loaded(env_file: Path) -> dict[str, Any]:
    return load(env_file, COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(loaded: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The normalised services (interpolated, every profile enabled)."""
    return loaded["project"]["services"]


@pytest.fixture(scope="module")
def raw_services(loaded: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services as written, with their ${VAR} references."""
    return loaded["model"]["services"]


def long_running(services: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name, s in services.items() if s.get("restart") != "no"]


# --- the loader --------------------------------------------------------------------------------------


def test_the_service_names_are_the_agreed_host_names(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"app", "app-lb", "worker", "postgres", "redis", "filebeat", "logstash", "elasticsearch",
                             "kibana", "setup", "prometheus", "alertmanager", "grafana", "jaeger", "mailpit",
                             "webhook-sink", "loadgen", "node-exporter"}


def test_no_version_key(loaded: dict[str, Any]) -> None:
    assert "version" not in loaded["model"]  # obsolete in the compose spec; compose warns about it


def test_the_loader_refuses_a_missing_secret(tmp_path: Path) -> None:
    """`${VAR:?}`: without .env's secret, compose stops instead of starting with an empty password."""
    env = parse_env(ENV_EXAMPLE.read_text())
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v or 'x'}\n" for k, v in env.items() if k != "REDIS_PASSWORD"))
    done = run_compose_check(env_file, COMPOSE_FILE)
    assert done.returncode == 1
    assert "REDIS_PASSWORD" in done.stderr


def test_the_loader_refuses_an_invalid_file(tmp_path: Path, env_file: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    mem_limit: 64m\n", "    mem_limit: [64m]\n", 1))
    done = run_compose_check(env_file, broken)
    assert done.returncode == 1
    assert "mem_limit" in done.stderr


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_each_optional_fragment_loads_on_top_of_the_core_file(env_file: Path, fragment: Path) -> None:
    project = load(env_file, COMPOSE_FILE, fragment)["project"]
    for name, service in project["services"].items():
        assert service.get("mem_limit") or _deploy_memory(service), f"{name} (with {fragment.name}) has no memory limit"
        assert service.get("logging", {}).get("driver") == "json-file", f"{name} (with {fragment.name})"
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} (with {fragment.name}) publishes {port}"


# --- images --------------------------------------------------------------------------------------------


def test_every_image_is_pinned(raw_services: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]],
                               example: dict[str, str]) -> None:
    for name, raw in raw_services.items():
        image = raw["image"]
        if image == APP_IMAGE:
            built = services[name].get("build") is not None
            assert built or raw.get("pull_policy") == "never", f"{name} would try to pull the local app image"
            continue
        variables = [m["name"] for m in _REFERENCE.finditer(image)]
        assert len(variables) == 1 and variables[0].endswith("_VERSION"), \
            f"{name}: {image!r} must take its tag from one *_VERSION of .env.example"
        assert example.get(variables[0]), f"{name}: {variables[0]} has no value in .env.example"
        resolved = services[name]["image"]
        assert ":" in resolved.rsplit("/", 1)[-1] and not resolved.endswith(":latest"), f"{name}: {resolved}"


def test_exactly_one_service_builds_the_app_image(services: dict[str, dict[str, Any]]) -> None:
    builders = [name for name, s in services.items() if s.get("build")]
    assert builders == ["app"]
    assert services["app"]["build"]["dockerfile"] == "app/Dockerfile"
    assert Path(services["app"]["build"]["context"]) == REPO  # so that it sees requirements.lock


# --- health and start-up order ------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name in long_running(services):
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: {check['test']}"


def test_one_shot_services_do_not_restart(services: dict[str, dict[str, Any]]) -> None:
    assert [n for n, s in services.items() if s.get("restart") == "no"] == ["setup"]
    assert all(services[n].get("restart") == "unless-stopped" for n in long_running(services))


def test_every_dependency_waits_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, dependency in (service.get("depends_on") or {}).items():
            condition = dependency["condition"]
            if (name, target) in START_ONLY_DEPENDENCIES:
                continue
            if services[target].get("restart") == "no":
                assert condition == COMPLETED, f"{name} -> {target}: a one-shot service must have completed"
            else:
                assert condition == HEALTHY, f"{name} -> {target} waits for {condition}, not for health"


def test_every_one_shot_service_is_awaited_by_a_long_running_one(services: dict[str, dict[str, Any]]) -> None:
    """Otherwise `docker compose up --wait` takes its exit for a failure (docker/compose#10596)."""
    for one_shot in (n for n, s in services.items() if s.get("restart") == "no"):
        waiting = [n for n in long_running(services)
                   if (services[n].get("depends_on") or {}).get(one_shot, {}).get("condition") == COMPLETED]
        assert waiting, f"no long-running service waits for {one_shot} to complete"


# --- ports ----------------------------------------------------------------------------------------------


def test_every_published_port_binds_loopback(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_published_ports_come_from_env_example(raw_services: dict[str, dict[str, Any]],
                                               example: dict[str, str]) -> None:
    keys = []
    for name, raw in raw_services.items():
        for port in raw.get("ports", []):
            found = re.fullmatch(r"127\.0\.0\.1:\$\{(?P<key>[A-Z_]+_PORT)\}:\d+", port)
            assert found, f"{name}: {port!r} must be 127.0.0.1:${{*_PORT}}:<container port>"
            assert example.get(found["key"], "").isdigit(), f"{found['key']} is not a port in .env.example"
            keys.append(found["key"])
    assert len(keys) == len(set(keys)), "two services publish the same host port"
    assert sorted(keys) == sorted(PUBLISHED_PORTS), "sandbox.compose.PUBLISHED_PORTS (make doctor) is out of step"


def test_metrics_ports_are_not_published(services: dict[str, dict[str, Any]]) -> None:
    published = {p["target"] for s in services.values() for p in s.get("ports", [])}
    assert not published & METRICS_PORTS
    assert services["app"]["environment"]["METRICS_PORT"] == "9464"
    assert services["worker"]["environment"]["WORKER_METRICS_PORT"] == "9465"


# --- files, variables, secrets -----------------------------------------------------------------------


def test_every_bind_mount_exists(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if volume["type"] != "bind":
                continue
            source = Path(volume["source"])
            if not source.is_relative_to(REPO):
                assert (name, str(source)) in HOST_MOUNTS, f"{name} mounts the host's {source}"
                assert volume.get("read_only"), f"{name} mounts the host's {source} writable"
                continue
            assert source.exists(), f"{name} mounts {source.relative_to(REPO)}, which does not exist"
            assert volume.get("read_only"), f"{name} mounts {source.relative_to(REPO)} writable"


def test_every_variable_is_defined_in_env_example(example: dict[str, str]) -> None:
    for path in [COMPOSE_FILE, *FRAGMENTS]:
        for match in _REFERENCE.finditer(path.read_text()):
            assert match["name"] in example, f"{path.name} uses ${{{match['name']}}}, not in .env.example"


def test_no_secret_has_a_default() -> None:
    for path in [COMPOSE_FILE, *FRAGMENTS]:
        for match in _REFERENCE.finditer(path.read_text()):
            if match["name"].endswith(SECRET_SUFFIXES):
                assert match["rest"].startswith(":?"), \
                    f"{path.name}: ${{{match['name']}{match['rest']}}} must be required (${{VAR:?...}}), no default"


def test_a_reference_with_a_default_is_caught() -> None:
    """The rule above can fail: the pattern sees defaults and escaped dollars as they are."""
    found = {m["name"]: m["rest"] for m in _REFERENCE.finditer("a ${X_PASSWORD:-changeme} b $${NOT_A_VAR} ${Y}")}
    assert found == {"X_PASSWORD": ":-changeme", "Y": ""}


def test_secrets_come_from_env_without_defaults(loaded: dict[str, Any]) -> None:
    for name, secret in loaded["model"].get("secrets", {}).items():
        assert secret.get("environment", "").endswith(SECRET_SUFFIXES), f"secret {name}: {secret}"


# --- resources, logs, users ------------------------------------------------------------------------------


def _deploy_memory(service: dict[str, Any]) -> str | None:
    return ((service.get("deploy") or {}).get("resources") or {}).get("limits", {}).get("memory")


def test_memory_limits_fit_the_documented_budget(services: dict[str, dict[str, Any]]) -> None:
    limits = {}
    for name, service in services.items():
        limit = service.get("mem_limit") or _deploy_memory(service)
        assert limit, f"{name} has no memory limit"
        limits[name] = int(limit) // (1024 * 1024)
    total = sum(limits.values())
    assert total <= COMPOSE_MEMORY_BUDGET_MIB, f"the limits add up to {total} MiB: {limits}"
    documented = re.search(r"the limits below add up to ([\d,]+) MiB", COMPOSE_FILE.read_text())
    assert documented, "docker-compose.yml's header must state the total of the memory limits"
    assert int(documented[1].replace(",", "")) == total, "the header's total is out of step with the limits"
    for name, mib in limits.items():
        assert f"{name} {mib:,}" in COMPOSE_FILE.read_text().split("\nname:")[0], f"the header misses {name} {mib:,}"


def test_every_service_logs_to_rotated_json_files(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert {"max-size", "max-file"} <= set(logging.get("options", {})), f"{name}: logs are not rotated"


def test_every_service_runs_as_a_named_non_root_user(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        user = service.get("user")
        if name in USER_EXCEPTIONS:
            continue
        assert user, f"{name} runs as its image's default user: set `user:` (or add an exception with a reason)"
        assert user.split(":")[0] not in ("0", "root"), f"{name} runs as root"


def test_app_image_services_run_as_the_dockerfile_user(services: dict[str, dict[str, Any]]) -> None:
    dockerfile_user = re.findall(r"^USER (\S+)$", (REPO / "app" / "Dockerfile").read_text(), re.MULTILINE)[-1]
    for name, service in services.items():
        if service["image"] == APP_IMAGE:
            assert service["user"] == dockerfile_user, name


def test_filebeat_reads_the_app_logs_read_only_without_root(services: dict[str, dict[str, Any]]) -> None:
    filebeat = services["filebeat"]
    app_gid = services["app"]["user"].split(":")[1]
    assert app_gid in filebeat.get("group_add", []), "filebeat must join the app's group to read its 0640 files"
    mount = next(v for v in filebeat["volumes"] if v["target"] == "/var/log/app")
    assert mount["source"] == "app-logs" and mount.get("read_only")
    assert "--strict.perms=false" in filebeat["command"]


def test_the_apps_alert_spool_is_on_a_named_volume(services: dict[str, dict[str, Any]]) -> None:
    app = services["app"]
    spool = app["environment"]["ALERT_SPOOL_DIR"]
    mount = next(v for v in app["volumes"] if v["target"] == spool)
    assert mount["type"] == "volume" and mount["source"] == "alert-spool"  # not tmpfs: it outlives the container


def test_the_service_environment(services: dict[str, dict[str, Any]]) -> None:
    for name in ("app", "worker"):
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["LOG_FILE"] == "/var/log/app/app.jsonl"
        assert env["METRICS_BIND_ADDRESS"] == "0.0.0.0"
        assert env["ALERT_WEBHOOK_URL"] == "http://webhook-sink:9099/hook"  # .env.example leaves it empty
        assert env["SMTP_HOST"] == "mailpit" and env["SMTP_PORT"] == "1025"
        assert any(t.startswith(f"{env['PROMETHEUS_MULTIPROC_DIR']}:") for t in services[name]["tmpfs"]), name
    assert services["worker"]["command"][:5] == ["celery", "--quiet", "-A", "service.worker:celery_app", "worker"]


def test_prometheus_scrapes_compose_services_on_their_ports(services: dict[str, dict[str, Any]]) -> None:
    """prometheus/targets/compose/*.yml (file_sd) and the DNS names of prometheus/scrape/compose/*.yml
    name services of this file and their container ports."""
    expected = {"app:9464", "worker:9465", "jaeger:8888", "node-exporter:9100", "prometheus:9090",
                "alertmanager:9093"}
    found = set()
    for path in sorted((REPO / "prometheus" / "targets" / "compose").glob("*.yml")):
        found |= set(re.findall(r'"([a-z-]+:\d+)"', path.read_text()))
    for path in sorted((REPO / "prometheus" / "scrape" / "compose").glob("*.yml")):
        for job in yaml.safe_load(path.read_text())["scrape_configs"]:
            found |= {f"{name}:{dns['port']}" for dns in job["dns_sd_configs"] for name in dns["names"]}
    assert found == expected
    assert {target.split(":")[0] for target in found} <= set(services)


def test_replicated_services_neither_publish_ports_nor_name_their_containers(
        services: dict[str, dict[str, Any]]) -> None:
    """`--scale app=3 --scale worker=2`: a fixed host port or container name would let only one start."""
    for name in ("app", "worker"):
        assert not services[name].get("ports"), f"{name} publishes a port: a second replica could not start"
        assert "container_name" not in services[name], name
    published = [port["published"] for port in services["app-lb"]["ports"]]
    assert published == [services["app-lb"]["ports"][0]["published"]] and published[0], "app-lb owns the app's port"


def test_the_integration_tests_containers_run_the_compose_images(services: dict[str, dict[str, Any]]) -> None:
    """testcontainers (tests/support/services.py) runs what compose runs, so `make images` serves both."""
    assert services["postgres"]["image"] == POSTGRES_IMAGE
    assert services["redis"]["image"] == REDIS_IMAGE
