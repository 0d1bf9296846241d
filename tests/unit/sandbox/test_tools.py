"""tools/build.sh's pins and up-to-date checks for the programs the native sandbox runs, and
sandbox.tools, which calls it. No Go build here: the binaries are stand-ins that print a version."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox import tools
from sandbox.common import MissingToolError
from sandbox.env import ROOT, parse_env

PINS = parse_env((ROOT / ".env.example").read_text())
NO_GO_PATH = "/usr/bin:/bin"  # bash, sed, awk and coreutils, but no go


def _tree(tmp_path: Path, **pins: str) -> Path:
    """A copy of build.sh, its list of programs, the tools modules' go.mod files and .env.example (with
    ``pins`` changed)."""
    (tmp_path / "tools").mkdir()
    for name in ("build.sh", "go-tools.txt"):
        shutil.copy(ROOT / "tools" / name, tmp_path / "tools" / name)
    for go_mod in (ROOT / "tools").glob("*/go.mod"):
        (tmp_path / "tools" / go_mod.parent.name).mkdir()
        shutil.copy(go_mod, tmp_path / "tools" / go_mod.parent.name / "go.mod")
    example = (ROOT / ".env.example").read_text()
    for key, value in pins.items():
        example = re.sub(rf"^{key}=.*$", f"{key}={value}", example, flags=re.MULTILINE)
    (tmp_path / ".env.example").write_text(example)
    return tmp_path / "tools" / "build.sh"


def _binary(bin_dir: Path, name: str, output: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\necho '{output}'\n")
    (bin_dir / name).chmod(0o755)


def _build(script: Path, tmp_path: Path, *names: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": NO_GO_PATH, "HOME": str(tmp_path), "OBS_TOOLS_DIR": str(tmp_path / "cache")}
    return subprocess.run(["/usr/bin/bash", str(script), *names], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def _built_by_this_recipe(script: Path, tmp_path: Path, name: str) -> None:
    """Records the current recipe of ``name`` beside its binary, as build.sh does after a build."""
    recipes = tmp_path / "cache" / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    (recipes / name).write_text(_build(script, tmp_path, "--recipe", name).stdout)


def test_binaries_that_report_the_pins_are_left_alone_without_go(tmp_path: Path) -> None:
    script = _tree(tmp_path)
    bin_dir = tmp_path / "cache" / "bin"
    # Jaeger logs a line before its version; Mailpit prints its own path first.
    _binary(bin_dir, "jaeger", f"2026/01/01 application version: git-version=v{PINS['JAEGER_VERSION']}\n"
                               f"jaeger version v{PINS['JAEGER_VERSION']}")
    _binary(bin_dir, "mailpit", f"{bin_dir}/mailpit v{PINS['MAILPIT_VERSION']} compiled with go1.26.8 on linux/amd64")
    _built_by_this_recipe(script, tmp_path, "jaeger")
    _built_by_this_recipe(script, tmp_path, "mailpit")
    done = _build(script, tmp_path, "jaeger", "mailpit")
    assert done.returncode == 0, done.stderr
    assert f"==> jaeger {PINS['JAEGER_VERSION']}: up to date" in done.stdout
    assert f"==> mailpit {PINS['MAILPIT_VERSION']}: up to date" in done.stdout


@pytest.mark.parametrize("foreign", [False, True])
def test_the_compose_plugin_is_linked_where_docker_looks_unless_one_is_there(tmp_path: Path, foreign: bool) -> None:
    script = _tree(tmp_path)
    bin_dir = tmp_path / "cache" / "bin"
    _binary(bin_dir, "docker-compose", f"Docker Compose version v{PINS['COMPOSE_VERSION']}")
    _built_by_this_recipe(script, tmp_path, "docker-compose")
    plugin = tmp_path / ".docker" / "cli-plugins" / "docker-compose"
    if foreign:  # the user's own plugin, say from Docker's packages
        _binary(plugin.parent, "docker-compose", "Docker Compose version v2.99.0")
    done = _build(script, tmp_path, "docker-compose")
    assert done.returncode == 0, done.stderr
    assert f"==> docker-compose {PINS['COMPOSE_VERSION']}: up to date" in done.stdout
    if foreign:
        assert not plugin.is_symlink() and "already has a plugin; this build is not linked" in done.stdout
    else:
        assert plugin.resolve() == (bin_dir / "docker-compose").resolve()


@pytest.mark.parametrize(("name", "output"), [
    ("docker-compose", "Docker Compose version v2.39.0"),
    ("jaeger", "jaeger version v2.12.0"),
    ("mailpit", "mailpit v1.30.0 compiled with go1.26.8 on linux/amd64"),
    ("mailpit", "mailpit dev compiled with go1.26.8 on linux/amd64"),  # built without the version flag
])
def test_another_version_needs_a_build(tmp_path: Path, name: str, output: str) -> None:
    script = _tree(tmp_path)
    _binary(tmp_path / "cache" / "bin", name, output)
    done = _build(script, tmp_path, name)
    assert done.returncode == 3, done.stdout + done.stderr  # a build is needed, and there is no Go
    assert f"'go' is not on PATH, and {name} must be built" in done.stderr


@pytest.mark.parametrize(("pins", "message"), [
    ({"JAEGER_VERSION": "2.14.0"},
     "tools/jaeger/go.mod selects github.com/jaegertracing/jaeger v1.76.0, but JAEGER_VERSION in .env.example "
     "means v1.77.0"),
    ({"MAILPIT_VERSION": "1.33.0"},
     "tools/mailpit/go.mod selects github.com/axllent/mailpit v1.33.1, but MAILPIT_VERSION in .env.example "
     "means v1.33.0"),
    ({"JAEGER_VERSION": "1.76.0"}, "JAEGER_VERSION=1.76.0: only Jaeger 2.x is known to this script"),
])
def test_pins_and_go_mod_must_agree(tmp_path: Path, pins: dict[str, str], message: str) -> None:
    done = _build(_tree(tmp_path, **pins), tmp_path, "jaeger")
    assert done.returncode == 1
    assert message in done.stderr


def test_the_repository_pins_agree_with_go_mod() -> None:
    jaeger = (ROOT / "tools" / "jaeger" / "go.mod").read_text()
    mailpit = (ROOT / "tools" / "mailpit" / "go.mod").read_text()
    _major, minor, patch = PINS["JAEGER_VERSION"].split(".")
    assert f"github.com/jaegertracing/jaeger v1.{63 + int(minor)}.{patch} " in jaeger
    assert f"github.com/axllent/mailpit v{PINS['MAILPIT_VERSION']} " in mailpit


def _fake_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    script = tmp_path / "build.sh"
    script.write_text(f"#!/usr/bin/env bash\n{body}\n")
    monkeypatch.setattr(tools, "BUILD_SCRIPT", script)


def test_ensure_prints_builds_but_not_cached_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _fake_script(tmp_path, monkeypatch, 'echo "==> jaeger 2.13.0: up to date (/x/jaeger)"\n'
                                        'echo "==> mailpit 1.33.1: building from tools/mailpit ..."')
    tools.ensure(["jaeger", "mailpit"])
    out = capsys.readouterr().out
    assert "building from tools/mailpit" in out and "up to date" not in out


def test_ensure_without_go_is_a_missing_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_script(tmp_path, monkeypatch, "echo \"tools/build.sh: 'go' is not on PATH\" >&2; exit 3")
    with pytest.raises(MissingToolError, match="'go' is not on PATH"):
        tools.ensure(["jaeger"])


def test_ensure_reports_a_failed_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_script(tmp_path, monkeypatch, "echo 'tools/build.sh: building jaeger failed'; exit 1")
    with pytest.raises(RuntimeError, match=r"tools/build.sh jaeger failed \(exit 1\):\ntools/build.sh: building"):
        tools.ensure(["jaeger"])
