"""`make doctor`: each check on the inputs that decide it, and the exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import compose, doctor
from sandbox.components import native
from sandbox.env import Settings


def _settings(tmp_path: Path, **values: str) -> Settings:
    return Settings({"SANDBOX_DIR": str(tmp_path / "state"), **values}, tmp_path, tmp_path / ".env")


@pytest.mark.parametrize(("content", "verdict"), [("262144\n", "ok"), ("1048576\n", "ok"), ("65530\n", "fail")])
def test_max_map_count(tmp_path: Path, content: str, verdict: str) -> None:
    proc = tmp_path / "max_map_count"
    proc.write_text(content)
    check = doctor.check_max_map_count(proc)
    assert check.verdict == verdict
    if verdict == "fail":
        assert "sysctl -w vm.max_map_count=262144" in check.detail


def test_max_map_count_unreadable_is_a_warning(tmp_path: Path) -> None:
    assert doctor.check_max_map_count(tmp_path / "absent").verdict == "warn"


def test_available_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree:  1 kB\nMemAvailable:    8192000 kB\n")
    assert doctor.available_memory_mib(meminfo) == 8000
    assert doctor.available_memory_mib(tmp_path / "absent") is None


@pytest.mark.parametrize(("available", "engine", "verdict"), [
    (16_000, 16_000, "ok"), (4_000, None, "warn"), (16_000, 4_000, "warn"), (None, None, "warn")])
def test_memory_against_the_budget(available: int | None, engine: int | None, verdict: str) -> None:
    assert doctor.check_memory(available, engine).verdict == verdict


@pytest.mark.parametrize(("version", "verdict"), [((2, 30, 0), "ok"), ((2, 24, 0), "ok"), ((2, 20, 3), "fail"),
                                                  (None, "fail")])
def test_compose_version(version: tuple[int, int, int] | None, verdict: str) -> None:
    assert doctor.check_compose(version).verdict == verdict


@pytest.mark.parametrize(("version", "verdict"), [("28.2.2", "ok"), ("25.0.0", "ok"), ("24.0.9", "ok"),
                                                  ("20.10.24+dfsg1", "ok"), ("19.03.15", "fail"), (None, "warn")])
def test_engine_version(version: str | None, verdict: str) -> None:
    assert doctor.check_engine(version, cli_present=True).verdict == verdict


@pytest.mark.parametrize(("version", "override_said"), [("20.10.24+dfsg1", True), ("24.0.9", True), ("25.0.0", False)])
def test_an_engine_before_25_is_told_about_the_healthcheck_override(version: str, override_said: bool) -> None:
    assert ("start_interval" in doctor.check_engine(version, cli_present=True).detail) is override_said


def test_no_docker_cli_is_a_warning_not_a_failure() -> None:
    check = doctor.check_engine(None, cli_present=False)
    assert check.verdict == "warn" and "native" in check.detail


def test_busy_ports_fail_unless_the_sandbox_itself_runs(tmp_path: Path) -> None:
    s = _settings(tmp_path, APP_PORT="8000", GRAFANA_PORT="3000")
    busy = {3000}
    check = doctor.check_ports(s, ["APP_PORT", "GRAFANA_PORT"], in_use=lambda port: port in busy)
    assert check.verdict == "fail" and "GRAFANA_PORT=3000" in check.detail and "APP_PORT" not in check.detail
    s.state_dir.mkdir()
    (s.state_dir / "endpoints.json").write_text('{"mode": "compose"}')
    assert doctor.check_ports(s, ["GRAFANA_PORT"], in_use=lambda port: port in busy).verdict == "warn"
    assert doctor.check_ports(s, ["APP_PORT"], in_use=lambda port: port in busy).verdict == "ok"


def test_report_fails_only_on_failures(capsys: pytest.CaptureFixture[str]) -> None:
    warn, fail = doctor.Check("a", "warn", "careful"), doctor.Check("b", "fail", "broken")
    assert doctor.report([warn]) == 0
    assert doctor.report([warn, fail]) == 1
    out = capsys.readouterr().out
    assert "FAIL  b  broken" in out and "problem(s) to fix before `make up`: b" in out


def test_without_docker_the_native_prerequisites_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker CLI at all
    port_keys = [key for component in native() for key in component.ports]
    s = _settings(tmp_path, ELASTIC_VERSION="9.5.4", GO_VERSION="1.26",
                  **{key: str(20000 + n) for n, key in enumerate(port_keys)})
    names = [check.name for check in doctor.run_checks(s)]
    assert names == ["docker engine", "native programs", "ports", "vm.max_map_count"]
    assert all(check.verdict != "fail" or check.name == "native programs" for check in doctor.run_checks(s))


@pytest.mark.parametrize(("engine", "mode", "first"), [
    ("28.2.2", "native", "native programs"),  # an engine answers, but native was asked for
    ("19.03.15", "auto", "docker engine"),    # too old: `make up` goes native, and so do the checks
    ("28.2.2", "auto", "docker engine"),
])
def test_the_checks_follow_the_mode_make_up_would_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        engine: str, mode: str, first: str) -> None:
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(f"#!/bin/sh\ncase \"$*\" in version*) echo {engine} ;; *) echo 2.40.3 ;; esac\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{docker.parent}:/usr/bin:/bin")
    port_keys = sorted({key for component in native() for key in component.ports} | set(compose.PUBLISHED_PORTS))
    s = _settings(tmp_path, ELASTIC_VERSION="9.5.4", GO_VERSION="1.26",
                  **{key: str(20000 + n) for n, key in enumerate(port_keys)})
    checks = doctor.run_checks(s, mode)
    names = [check.name for check in checks]
    assert names[0] == first
    native_checked = "native programs" in names
    assert native_checked is (mode == "native" or engine.startswith("19"))
    if engine.startswith("19"):
        assert checks[0].verdict == "warn" and "runs native processes" in checks[0].detail
