"""Compose mode of `python -m sandbox`, against a fake `docker` that records what it was asked to do."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from sandbox import compose, native
from sandbox import docker_engine as engine_module
from sandbox.__main__ import main
from sandbox.docker_engine import compose_version
from sandbox.env import ROOT, SECRET_SUFFIXES, load_settings, parse_env

# A model as `docker compose config --format json` prints it, reduced to what `up` reads.
MODEL = {"services": {
    "app": {"image": "observability-stack/app:local", "build": {"context": "."}, "depends_on": {"postgres": {}}},
    "postgres": {"image": "postgres:17-alpine"},
    "elasticsearch": {"image": "elasticsearch:9.5.4"},
    "setup": {"image": "observability-stack/app:local", "depends_on": {"elasticsearch": {}}},
    "kibana": {"image": "kibana:9.5.4", "depends_on": {"elasticsearch": {}}},
    "grafana": {"image": "grafana/grafana", "depends_on": {"setup": {}, "postgres": {}}},
}}
EVERY_IMAGE = ("observability-stack/app:local", "postgres:17-alpine", "elasticsearch:9.5.4", "kibana:9.5.4",
               "grafana/grafana:latest")


def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, engine: str = "28.2.2", compose: str = "2.30.0",
                up_rc: int = 0, images: tuple[str, ...] = EVERY_IMAGE, stand_ins: tuple[str, ...] = ()) -> Path:
    """A `docker` on PATH: the server `version` prints `engine` (fails when empty), `compose version
    --short` prints `compose` (fails when empty), `compose config` prints MODEL, `images` lists
    `images` (filtered by the stand-in label: `stand_ins`), `compose ... up` exits up_rc; every call
    is appended to the returned log."""
    log = tmp_path / "docker.log"
    model = tmp_path / "model.json"
    model.write_text(json.dumps(MODEL))
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir(exist_ok=True)
    docker.write_text(f"""#!/bin/sh
echo "$*" >> {log}
case "$*" in
  "version --format"*) [ -n "{engine}" ] && echo "{engine}" && exit 0; exit 1 ;;
  "compose version --short") [ -n "{compose}" ] && echo "{compose}" && exit 0; exit 1 ;;
  "images --filter label="*) printf '%s\\n' {" ".join(stand_ins)} ;;
  "images "*) printf '%s\\n' {" ".join(images)} ;;
  *" config --format json") cat {model} ;;
  *" up "*) exit {up_rc} ;;
esac
exit 0
""")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{docker.parent}{os.pathsep}{os.environ['PATH']}")
    engine_module.engine_needs_start_interval_override.cache_clear()
    return log


@pytest.fixture
def sandbox_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sandbox of the test's own: its .env and state directory under tmp_path."""
    monkeypatch.setenv("SANDBOX_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SANDBOX_ENV_FILE", str(tmp_path / ".env"))
    for name in ("SANDBOX_MODE", "COMPOSE_FILE", "COMPOSE_PATH_SEPARATOR", "COMPOSE_PROJECT_NAME"):
        monkeypatch.delenv(name, raising=False)  # the developer's shell must not change the answers
    engine_module.engine_needs_start_interval_override.cache_clear()
    return tmp_path


def _never_native(*_args: object) -> int:
    raise AssertionError("native mode started")


@pytest.mark.parametrize(("printed", "version"), [("2.30.1", (2, 30, 1)), ("v2.24.0-desktop.1", (2, 24, 0)),
                                                  ("", None)])
def test_compose_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, printed: str,
                         version: tuple[int, int, int] | None) -> None:
    fake_docker(tmp_path, monkeypatch, compose=printed)
    assert compose_version() == version


def test_up_runs_compose_and_writes_the_endpoints(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    log = fake_docker(sandbox_env, monkeypatch)
    monkeypatch.setattr(native, "up", _never_native)
    assert main(["up"]) == 0
    calls = log.read_text().splitlines()
    env_file = sandbox_env / ".env"
    overrides = sandbox_env / "state" / "compose"
    assert (f"compose --project-directory {ROOT} --env-file {env_file} --file {ROOT}/docker-compose.yml "
            f"--file {overrides}/sandbox.yml up --detach --wait --wait-timeout 900 "
            f"--remove-orphans {' '.join(MODEL['services'])}") in calls

    endpoints_path = sandbox_env / "state" / "endpoints.json"
    assert stat.S_IMODE(endpoints_path.stat().st_mode) == 0o600  # it holds passwords
    endpoints = json.loads(endpoints_path.read_text())
    secrets = {k: v for k, v in parse_env(env_file.read_text()).items() if k.endswith(SECRET_SUFFIXES)}
    assert endpoints["mode"] == "compose"
    assert {"metrics", "worker_metrics"}.isdisjoint(endpoints)  # not published in compose
    assert {"app", "postgres", "redis", "webhook_sink", "smtp", "mailpit", "prometheus", "alertmanager", "jaeger",
            "elasticsearch", "kibana", "grafana"} <= set(endpoints)
    assert endpoints.pop("left_out") == {}
    assert endpoints["app"] == "http://127.0.0.1:8000"
    assert endpoints["elasticsearch"] == f"http://elastic:{secrets['ELASTIC_PASSWORD']}@127.0.0.1:9200"
    assert endpoints["postgres"] == f"postgresql://app:{secrets['POSTGRES_PASSWORD']}@127.0.0.1:5432/app"
    assert all(url.startswith(("http://", "postgresql://", "redis://", "127.0.0.1:")) for key, url in endpoints.items()
               if key != "mode")

    out = capsys.readouterr().out
    assert "http://elastic:***@127.0.0.1:9200" in out
    assert not any(secret in out for secret in secrets.values())  # the table masks every password
    assert "not published" in out


def test_a_failed_compose_up_writes_no_endpoints(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fake_docker(sandbox_env, monkeypatch, up_rc=17)
    monkeypatch.setattr(native, "up", _never_native)
    assert main(["up"]) == 17
    assert not (sandbox_env / "state" / "endpoints.json").exists()
    assert "make doctor" in capsys.readouterr().err


@pytest.mark.parametrize(("compose", "engine"), [("2.20.0", "28.2.2"), ("", "28.2.2"), ("2.30.0", ""),
                                                 ("2.30.0", "19.03.15")])
def test_up_falls_back_to_native_without_a_usable_compose(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], compose: str,
                                                          engine: str) -> None:
    log = fake_docker(sandbox_env, monkeypatch, compose=compose, engine=engine)
    started = []
    monkeypatch.setattr(native, "up", lambda s: started.append(s) or 0)
    assert main(["up"]) == 0
    assert started
    assert not any(" up " in f" {call} " for call in log.read_text().splitlines())
    assert "Native processes: " in capsys.readouterr().out  # and why


@pytest.mark.parametrize(("asked", "how"), [("--mode=native", "argument"), ("native", "SANDBOX_MODE")])
def test_native_mode_asked_for_never_asks_docker(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch, asked: str,
                                                 how: str) -> None:
    log = fake_docker(sandbox_env, monkeypatch)
    started = []
    monkeypatch.setattr(native, "up", lambda s: started.append(s) or 0)
    if how == "SANDBOX_MODE":
        monkeypatch.setenv("SANDBOX_MODE", asked)
    assert main(["up", asked] if how == "argument" else ["up"]) == 0
    assert started
    assert not log.exists()


def test_a_mode_asked_for_that_is_not_the_running_one_is_refused(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    log = fake_docker(sandbox_env, monkeypatch)
    monkeypatch.setattr(native, "up", _never_native)
    assert main(["up"]) == 0  # compose, recorded
    assert main(["up", "--mode", "native"]) == 2
    assert "runs in compose mode, not native: `make down` first" in capsys.readouterr().err
    assert main(["down", "--mode", "auto"]) == 0
    assert log.read_text().splitlines()[-1].endswith("down --remove-orphans")


def test_compose_mode_asked_for_fails_when_compose_cannot_run(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    fake_docker(sandbox_env, monkeypatch, engine="")
    monkeypatch.setattr(native, "up", _never_native)
    assert main(["up", "--mode", "compose"]) == 2
    assert "no Docker engine answers" in capsys.readouterr().err


def test_services_without_an_image_are_left_out_with_their_dependents(
    sandbox_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = fake_docker(sandbox_env, monkeypatch, images=("postgres:17-alpine", "grafana/grafana:latest"))
    monkeypatch.setattr(native, "up", _never_native)
    assert main(["up"]) == 0
    calls = log.read_text().splitlines()
    # A pull is tried for the missing images only (a registry may have them), then the rest starts.
    assert any(call.endswith("pull --quiet --ignore-pull-failures elasticsearch kibana") for call in calls)
    assert any(call.endswith("--remove-orphans app postgres") for call in calls)
    endpoints = json.loads((sandbox_env / "state" / "endpoints.json").read_text())
    assert set(endpoints["left_out"]) == {"elasticsearch", "setup", "kibana", "grafana"}
    assert endpoints["left_out"]["setup"] == "needs elasticsearch, left out"
    assert endpoints["left_out"]["grafana"] == "needs setup, left out"
    assert {"elasticsearch", "kibana", "grafana"}.isdisjoint(endpoints)
    out = capsys.readouterr().out
    assert "left out: image kibana:9.5.4 is not on this machine and could not be pulled" in out
    assert "make images" in out


def test_the_plan_keeps_what_compose_builds_and_what_is_present() -> None:
    chosen = compose.plan(MODEL["services"], set(EVERY_IMAGE))
    assert chosen.started == list(MODEL["services"]) and chosen.left_out == {}
    assert compose.image_reference("grafana/grafana") == "grafana/grafana:latest"
    assert compose.image_reference("localhost:5000/x@sha256:ab") == "localhost:5000/x@sha256:ab"


@pytest.mark.parametrize(("engine", "override"), [("20.10.24+dfsg1", True), ("24.0.9", True), ("25.0.3", False)])
def test_an_engine_before_25_gets_the_start_interval_override(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                              engine: str, override: bool) -> None:
    fake_docker(sandbox_env, monkeypatch, engine=engine)
    command = compose.compose_command(load_settings(), "ps")
    written = sandbox_env / "state" / "compose" / "engine-before-25.yml"
    assert (command[-3:-1] == ["--file", str(written)]) is override
    assert command[-1] == "ps"
    assert written.exists() is override
    if override:
        assert "start_interval: !reset null" in written.read_text()


def test_the_override_drops_start_interval_and_probes_at_most_every_5_seconds(tmp_path: Path) -> None:
    compose_file = tmp_path / "compose.yml"
    compose_file.write_text("""services:
  slow: {healthcheck: {test: [CMD, "true"], interval: 30s, start_interval: 2s}}
  quick: {healthcheck: {test: [CMD, "true"], interval: 3s, start_interval: 1s}}
  plain: {healthcheck: {test: [CMD, "true"], interval: 30s}}
  none: {image: x}
""")
    text = compose.start_interval_override([compose_file])
    model = yaml.load(text, Loader=_ResetLoader)
    assert model == {"services": {"slow": {"healthcheck": {"start_interval": "RESET", "interval": "5s"}},
                                  "quick": {"healthcheck": {"start_interval": "RESET"}}}}


def test_the_sandbox_override_carries_the_sandbox_settings(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_ALERT_GROUP_WAIT", "7s")
    monkeypatch.setenv("SANDBOX_SPAN_EXPORT_DELAY_MS", "250")
    s = load_settings()
    model = yaml.safe_load(compose.sandbox_override(s, sandbox_env / "home"))["services"]
    assert model["alertmanager"]["environment"]["ALERT_GROUP_WAIT"] == "7s"
    assert {model[name]["environment"]["OTEL_BSP_SCHEDULE_DELAY"] for name in ("app", "worker")} == {"250"}
    mounts = {mount["target"]: Path(mount["source"]) for mount in model["prometheus"]["volumes"]}
    assert set(mounts) == {"/etc/prometheus/prometheus.yml", "/etc/prometheus/rules"}
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert config["global"]["scrape_interval"] == s["SANDBOX_SCRAPE_INTERVAL"]
    alert, shortened = s["SANDBOX_ALERT_FOR"].split("=")
    rules = [rule for path in mounts["/etc/prometheus/rules"].glob("*.yml")
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
    shortened_rules = [rule["for"] for rule in rules if rule.get("alert") == alert]  # a critical and a warning twin
    assert shortened_rules and set(shortened_rules) == {shortened}


class _ResetLoader(yaml.SafeLoader):
    """Reads compose's `!reset` tag as the string RESET."""


_ResetLoader.add_constructor("!reset", lambda _loader, _node: "RESET")


def test_down_and_status_follow_the_recorded_mode(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_docker(sandbox_env, monkeypatch)
    monkeypatch.setattr(native, "up", _never_native)
    assert main(["up"]) == 0
    assert main(["status"]) == 0
    assert main(["down"]) == 0
    calls = [call.split("/sandbox.yml ")[-1] for call in log.read_text().splitlines()]
    assert calls[-2:] == ["ps --all", "down --remove-orphans"]
    assert main(["down", "--volumes"]) == 0  # nothing recorded any more: compose, as an engine answers
    assert log.read_text().splitlines()[-1].endswith("down --remove-orphans --volumes")
    assert not (sandbox_env / "state" / "endpoints.json").exists()


def test_a_stand_in_that_cannot_serve_its_service_leaves_it_out_with_its_dependents(
    sandbox_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Elasticsearch's stand-in is built for the cluster extension; the main stack's setup cannot use it.
    log = fake_docker(sandbox_env, monkeypatch, stand_ins=("elasticsearch:9.5.4",))
    monkeypatch.setattr(native, "up", _never_native)
    assert main(["up"]) == 0
    calls = log.read_text().splitlines()
    assert not any(" pull " in call for call in calls), "a stand-in that is there is not pulled over"
    assert any(call.endswith("--remove-orphans app postgres") for call in calls)
    left_out = json.loads((sandbox_env / "state" / "endpoints.json").read_text())["left_out"]
    assert set(left_out) == {"elasticsearch", "setup", "kibana", "grafana"}
    assert left_out["elasticsearch"].startswith("the stand-in elasticsearch:9.5.4 cannot serve it: ")
    assert "left out: the stand-in elasticsearch:9.5.4 cannot serve it" in capsys.readouterr().out


def test_an_upstream_image_of_the_same_name_is_used() -> None:
    # Without the stand-in label, the image is upstream's (pulled from a registry): nothing is left out.
    assert compose.plan(MODEL["services"], set(EVERY_IMAGE), {}).left_out == {}
