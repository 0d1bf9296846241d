"""`make up` and `make test` check the machine first: what is missing, and the one command that installs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import preflight

TEST_ONLY_PROGRAMS = {"busybox": "busybox", "chromium": "chromium", "wrk": "wrk", "valgrind": "valgrind"}
# What each package puts on PATH, for a stand-in apt-get (maven: only where Elasticsearch is not cached).
PROGRAM_OF = {**TEST_ONLY_PROGRAMS, "maven": "mvn", "redis-server": "redis-server"}


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with nothing on it but what a test puts there, on a machine whose Go tools are built
    (Go and Node.js are needed only until they are: see the test of that below)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(preflight, "_tools_built", lambda: True)
    return bin_dir


def _put(bin_dir: Path, *programs: str) -> None:
    for name in programs:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)


def test_without_apt_the_one_install_command_is_printed_and_make_stops(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(preflight, "apt_can_install", lambda: False)
    _put(bare_path, "redis-server")
    assert preflight.run("test") == 1
    err = capsys.readouterr().err
    packages = sorted({need.package for need, _ in preflight.missing("test") if need.package})
    assert set(TEST_ONLY_PROGRAMS.values()) <= set(packages) and "redis-server" not in packages
    assert err.splitlines()[-1] == f"  sudo apt-get install -y --no-install-recommends {' '.join(packages)}"


def test_as_root_with_apt_the_packages_are_installed_then_checked_again(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed: list[list[str]] = []

    def fake_apt(packages: list[str]) -> bool:  # what apt-get would put on PATH
        installed.append(list(packages))
        _put(bare_path, *(PROGRAM_OF[package] for package in packages))
        return True

    monkeypatch.setattr(preflight, "apt_can_install", lambda: True)
    monkeypatch.setattr(preflight, "install", fake_apt)
    _put(bare_path, "redis-server")
    expected = sorted({need.package for need, _ in preflight.missing("test") if need.package})
    assert preflight.run("test") == 0
    assert installed == [expected] and set(TEST_ONLY_PROGRAMS.values()) <= set(expected)


def test_the_test_only_needs_do_not_stop_make_up(bare_path: Path) -> None:
    _put(bare_path, "redis-server", "mvn")
    assert not {need.package for need, _ in preflight.missing("up")} & set(TEST_ONLY_PROGRAMS.values())


def test_compose_mode_needs_no_native_engine(bare_path: Path) -> None:
    assert preflight.missing("up")  # redis-server is not on this PATH ...
    assert preflight.run("up", "compose") == 0  # ... and the compose stack does not need it


def test_the_mode_comes_from_make_then_the_environment_then_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SANDBOX_MODE=native\n")
    assert preflight.chosen_mode({"SANDBOX_ENV_FILE": str(env_file)}) == "native"
    assert preflight.chosen_mode({"SANDBOX_ENV_FILE": str(env_file), "SANDBOX_MODE": "compose"}) == "compose"
    assert preflight.chosen_mode({"SANDBOX_ENV_FILE": str(env_file), "MODE": "auto"}) == "auto"
    assert preflight.chosen_mode({"SANDBOX_ENV_FILE": str(tmp_path / "none")}) == "auto"


def test_go_and_node_are_named_until_the_tools_are_built(bare_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _put(bare_path, "redis-server", "mvn")
    assert not [need for need, _ in preflight.missing("up") if need.name.startswith(("Go ", "Node.js"))]
    monkeypatch.setattr(preflight, "_tools_built", lambda: False)
    unbuilt = {need.name: (need.package, why) for need, why in preflight.missing("up")}
    assert unbuilt["Go (the pinned tools)"][0] is None and "Go 1.26 or newer" in unbuilt["Go (the pinned tools)"][1]
    assert unbuilt["Node.js and npm (the web UIs)"][0] is None  # not Debian's: too old for the UI's build
