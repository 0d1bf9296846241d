"""`python -m sandbox`: the Docker probe, and down/status with nothing running (no servers needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.__main__ import main
from sandbox.components import COMPONENTS, docker_only, native
from sandbox.docker_engine import docker_reachable, parse_version


def _fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(f"#!/bin/sh\n{script}\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{docker.parent}{os.pathsep}{os.environ['PATH']}")  # ours first


@pytest.mark.parametrize(("script", "reachable"), [("echo 20.10.24+dfsg1", True), ("exit 1", False),
                                                  ("exec sleep 5", False), ("exit 0", False)])
def test_docker_is_reachable_only_when_docker_info_succeeds_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, reachable: bool
) -> None:
    _fake_docker(tmp_path, monkeypatch, script)
    assert docker_reachable(timeout=0.5) is reachable


def test_no_docker_cli_means_no_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not docker_reachable()


@pytest.mark.parametrize(("text", "version"), [("20.10.24+dfsg1", (20, 10, 24)), ("v2.24.0-desktop.1", (2, 24, 0)),
                                               ("28.2", (28, 2)), ("dev", None), ("", None)])
def test_versions_are_read_as_the_tools_print_them(text: str, version: tuple[int, ...] | None) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize("engine_answers", [True, False])
def test_down_and_status_with_nothing_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], engine_answers: bool) -> None:
    """SANDBOX_MODE=native: the same answer whether or not a Docker engine answers."""
    _fake_docker(tmp_path, monkeypatch, "echo 28.2.2" if engine_answers else "exit 1")
    monkeypatch.setenv("SANDBOX_MODE", "native")
    monkeypatch.setenv("SANDBOX_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SANDBOX_ENV_FILE", str(tmp_path / ".env"))
    assert main(["down"]) == 0
    assert "Nothing is running." in capsys.readouterr().out
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[: len(native())]] == [[c.name, "stopped"] for c in native()]
    assert not (tmp_path / ".env").exists()  # only `up` creates it


def test_every_component_is_native_or_docker_only() -> None:
    names = [c.name for c in COMPONENTS]
    assert len(names) == len(set(names))
    assert all(c.health is not None for c in native())
    assert {c.title for c in docker_only()} == {"Filebeat", "Logstash", "Kibana", "Grafana"}
    assert len(native()) + len(docker_only()) == len(COMPONENTS)


@pytest.mark.parametrize("command", ["stop", "start"])
def test_stop_and_start_need_a_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], command: str) -> None:
    monkeypatch.setenv("SANDBOX_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SANDBOX_ENV_FILE", str(tmp_path / ".env"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "endpoints.json").write_text('{"mode": "native"}')  # no Docker probe
    assert main([command]) == 2
    assert f"`{command}` needs the component" in capsys.readouterr().err
    assert main([command, "redis" if command == "stop" else "no-such-component"]) == (0 if command == "stop" else 2)
