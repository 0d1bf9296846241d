"""Compose mode of `python -m sandbox`, against a fake `docker` that records what it was asked to do."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sandbox import native
from sandbox.__main__ import main
from sandbox.compose import compose_version
from sandbox.env import ROOT, SECRET_SUFFIXES, parse_env


def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, compose: str = "2.30.0", up_rc: int = 0,
                info_rc: int = 0) -> Path:
    """A `docker` on PATH: `info` answers info_rc, `compose version --short` prints `compose` (or
    fails when empty), `compose ... up` exits up_rc; every call is appended to the returned log."""
    log = tmp_path / "docker.log"
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir(exist_ok=True)
    docker.write_text(f"""#!/bin/sh
echo "$*" >> {log}
case "$*" in
  info*) exit {info_rc} ;;
  "compose version --short") [ -n "{compose}" ] && echo "{compose}" && exit 0; exit 1 ;;
  *" up "*) exit {up_rc} ;;
esac
exit 0
""")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{docker.parent}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.fixture
def sandbox_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sandbox of the test's own: its .env and state directory under tmp_path."""
    monkeypatch.setenv("SANDBOX_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SANDBOX_ENV_FILE", str(tmp_path / ".env"))
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
    assert f"compose --project-directory {ROOT} --env-file {env_file} up --detach --wait --wait-timeout 900" in calls

    endpoints_path = sandbox_env / "state" / "endpoints.json"
    assert stat.S_IMODE(endpoints_path.stat().st_mode) == 0o600  # it holds passwords
    endpoints = json.loads(endpoints_path.read_text())
    secrets = {k: v for k, v in parse_env(env_file.read_text()).items() if k.endswith(SECRET_SUFFIXES)}
    assert endpoints["mode"] == "compose"
    assert {"metrics", "worker_metrics"}.isdisjoint(endpoints)  # not published in compose
    assert {"app", "postgres", "redis", "webhook_sink", "smtp", "mailpit", "prometheus", "alertmanager", "jaeger",
            "elasticsearch", "kibana", "grafana"} <= set(endpoints)
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


@pytest.mark.parametrize(("compose", "info_rc"), [("2.20.0", 0), ("", 0), ("2.30.0", 1)])
def test_up_falls_back_to_native_without_a_usable_compose(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                          compose: str, info_rc: int) -> None:
    log = fake_docker(sandbox_env, monkeypatch, compose=compose, info_rc=info_rc)
    started = []
    monkeypatch.setattr(native, "up", lambda s: started.append(s) or 0)
    assert main(["up"]) == 0
    assert started
    assert not any(" up " in f" {call} " for call in log.read_text().splitlines())


def test_down_and_status_follow_the_recorded_mode(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_docker(sandbox_env, monkeypatch)
    monkeypatch.setattr(native, "up", _never_native)
    assert main(["up"]) == 0
    assert main(["status"]) == 0
    assert main(["down"]) == 0
    calls = [call.split(" --env-file ")[-1].split(" ", 1)[-1] for call in log.read_text().splitlines()]
    assert calls[-2:] == ["ps --all", "down"]
    assert not (sandbox_env / "state" / "endpoints.json").exists()
