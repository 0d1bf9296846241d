"""tools/build.sh's recipes: what makes a cached binary stale, and what a build needs before it starts.
No build here: the script runs in a copy of its tree, with stand-in binaries and no Go or Node.js."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.env import ROOT, parse_env

PINS = parse_env((ROOT / ".env.example").read_text())
# What the script runs before it builds anything; a PATH of these alone has neither go nor node.
_COMMANDS = ("bash", "env", "awk", "sed", "head", "cat", "cut", "sha256sum", "dirname", "mkdir", "rm", "mv",
             "date", "nproc", "flock", "sleep", "mktemp", "tr")


def _tree(tmp_path: Path, **pins: str) -> Path:
    """build.sh with what it reads (go-tools.txt, the tools modules, .env.example with ``pins`` set)."""
    tools = tmp_path / "tree" / "tools"
    tools.mkdir(parents=True)
    for name in ("build.sh", "go-tools.txt"):
        shutil.copy(ROOT / "tools" / name, tools / name)
    for module in (ROOT / "tools").glob("*/go.mod"):
        shutil.copytree(module.parent, tools / module.parent.name)
    example = (ROOT / ".env.example").read_text()
    for key, value in pins.items():
        example = re.sub(rf"^{key}=.*$", f"{key}={value}", example, flags=re.MULTILINE)
    (tmp_path / "tree" / ".env.example").write_text(example)
    return tools / "build.sh"


def _path_without_go_and_node(tmp_path: Path, go: bool) -> str:
    bin_dir = tmp_path / "path"
    bin_dir.mkdir()
    for command in _COMMANDS:
        found = shutil.which(command)
        assert found is not None, command
        (bin_dir / command).symlink_to(found)
    if go:  # present, but never run: the script stops before a build
        (bin_dir / "go").write_text("#!/bin/sh\nexit 99\n")
        (bin_dir / "go").chmod(0o755)
    return str(bin_dir)


def _run(script: Path, tmp_path: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path or os.environ["PATH"], "HOME": str(tmp_path), "OBS_TOOLS_DIR": str(tmp_path / "cache")}
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def _recipe(script: Path, tmp_path: Path, name: str) -> str:
    done = _run(script, tmp_path, "--recipe", name)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"[0-9a-f]{16}\n", done.stdout), done.stdout
    return done.stdout.strip()


def test_the_web_uis_recipe_and_pnpm_pin_belong_to_prometheus_not_to_promtool(tmp_path: Path) -> None:
    script = _tree(tmp_path)
    before = {name: _recipe(script, tmp_path, name) for name in ("prometheus", "promtool", "mailpit")}
    assert before["prometheus"] != before["promtool"]
    moved = _tree(tmp_path / "moved", PNPM_VERSION="12.0.0")
    after = {name: _recipe(moved, tmp_path, name) for name in before}
    assert after["prometheus"] != before["prometheus"]
    assert after["promtool"] == before["promtool"] and after["mailpit"] == before["mailpit"]


def test_an_edit_of_a_ui_step_is_a_new_recipe(tmp_path: Path) -> None:
    script = _tree(tmp_path)
    before = _recipe(script, tmp_path, "mailpit")
    text = script.read_text()
    assert "    npm run build\n" in text
    script.write_text(text.replace("    npm run build\n", "    npm run build -- --verbose\n", 1))
    assert _recipe(script, tmp_path, "mailpit") != before


def test_the_script_s_comments_and_output_are_no_part_of_a_recipe(tmp_path: Path) -> None:
    script = _tree(tmp_path)
    before = {name: _recipe(script, tmp_path, name) for name in ("prometheus", "jaeger")}
    script.write_text(script.read_text().replace("# One line per program", "# A line per program", 1)
                      .replace("FAILED after", "failed after", 1))
    assert {name: _recipe(script, tmp_path, name) for name in before} == before


@pytest.mark.parametrize("record", ["", "0123456789abcdef"])
def test_a_binary_of_the_pinned_version_but_another_recipe_is_rebuilt(tmp_path: Path, record: str) -> None:
    """What a cache made before the web UIs holds: the right version, no UI."""
    script = _tree(tmp_path)
    binary = tmp_path / "cache" / "bin" / "prometheus"
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!/bin/sh\necho 'prometheus, version {PINS['PROMETHEUS_VERSION']} (branch: x)'\n")
    binary.chmod(0o755)
    if record:
        (tmp_path / "cache" / "recipes").mkdir()
        (tmp_path / "cache" / "recipes" / "prometheus").write_text(record + "\n")
    done = _run(script, tmp_path, "prometheus", path=_path_without_go_and_node(tmp_path, go=False))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "'go' is not on PATH, and prometheus must be built" in done.stderr


def test_a_web_ui_needs_node_before_anything_is_built(tmp_path: Path) -> None:
    done = _run(_tree(tmp_path), tmp_path, "mailpit", "promtool", path=_path_without_go_and_node(tmp_path, go=True))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "mailpit must be built with a web UI, which needs Node.js 20.19 or newer with npm" in done.stderr
    assert "promtool" not in done.stderr  # it has no UI


def test_recipe_takes_one_known_name(tmp_path: Path) -> None:
    script = _tree(tmp_path)
    assert _run(script, tmp_path, "--recipe").returncode == 2
    assert _run(script, tmp_path, "--recipe", "jaeger", "mailpit").returncode == 2
    assert _run(script, tmp_path, "--recipe", "grafana").returncode == 2
