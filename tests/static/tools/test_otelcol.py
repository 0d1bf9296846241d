"""tools/otelcol, our composition of the OpenTelemetry Collector: its modules are of one release, the
built binary holds exactly the components main.go names and reports the pinned version, and
tools/build.sh keeps it pinned and rebuilds it when its source changes."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sandbox.env import ROOT, parse_env
from tests.support.tools import tool_path

MODULE = ROOT / "tools" / "otelcol"
PINS = parse_env((ROOT / ".env.example").read_text())
RELEASE = f"v{PINS['OTELCOL_VERSION']}"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib/"
CORE = "go.opentelemetry.io/collector"
# What the stack's log pipeline uses (the file log into Elasticsearch), plus the cheap core
# otlp receiver and debug exporter; nothing else of contrib.
COMPONENTS = {
    "receivers": {"file_log", "otlp"},
    "processors": {"transform"},
    "exporters": {"elasticsearch", "debug"},
    "connectors": set(),
    "extensions": {"file_storage", "health_check"},
}
NO_GO_PATH = "/usr/bin:/bin"  # bash, sed, awk and coreutils, but no go


def _required() -> dict[str, str]:
    """go.mod's requirements, module -> version."""
    return dict(re.findall(r"^\s+(\S+) (v\S+)(?: // indirect)?$", (MODULE / "go.mod").read_text(), re.MULTILINE))


def test_every_collector_module_is_of_one_release() -> None:
    """Modules of two releases do not build together: contrib and the core's unstable modules at
    the pin, the core's stable (v1) modules at the one release published with it."""
    required = _required()
    collector = {m: v for m, v in required.items() if m.startswith((CONTRIB, CORE + "/")) or m == CORE}
    assert required[CORE + "/otelcol"] == RELEASE
    unstable = {m: v for m, v in collector.items() if not v.startswith("v1.")}
    assert {m: v for m, v in unstable.items() if v != RELEASE} == {}
    assert len({v for v in collector.values() if v.startswith("v1.")}) == 1, sorted(collector.items())


def test_the_binary_holds_exactly_the_components_of_the_pinned_release() -> None:
    done = subprocess.run([str(tool_path("otelcol")), "components"], capture_output=True, text=True, timeout=60,
                          check=True)
    listed = yaml.safe_load(done.stdout)
    assert {kind: {c["name"] for c in listed[kind] or []} for kind in COMPONENTS} == COMPONENTS
    modules = [c["module"] for kind in COMPONENTS for c in listed[kind] or []]
    assert all(module.endswith(f" {RELEASE}") for module in modules), modules
    assert {p["scheme"] for p in listed["providers"]} == {"env", "file", "yaml"}


def test_the_binary_reports_the_pinned_version() -> None:
    done = subprocess.run([str(tool_path("otelcol")), "--version"], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.startswith(f"otelcol version {PINS['OTELCOL_VERSION']}+src."), done.stdout


def _source_digest() -> str:
    """build.sh's source_digest of the module: what it appends to the version."""
    sources = b"".join((MODULE / name).read_bytes() for name in ("main.go", "go.mod", "go.sum"))
    return hashlib.sha256(sources).hexdigest()[:12]


def _tree(tmp_path: Path, otelcol_version: str = PINS["OTELCOL_VERSION"]) -> Path:
    """A copy of build.sh, its list of programs, every tools module's go.mod, tools/otelcol whole and
    .env.example."""
    (tmp_path / "tools").mkdir()
    for name in ("build.sh", "go-tools.txt"):
        shutil.copy(ROOT / "tools" / name, tmp_path / "tools" / name)
    for go_mod in (ROOT / "tools").glob("*/go.mod"):
        (tmp_path / "tools" / go_mod.parent.name).mkdir()
        shutil.copy(go_mod, tmp_path / "tools" / go_mod.parent.name / "go.mod")
    for name in ("main.go", "go.sum"):
        shutil.copy(MODULE / name, tmp_path / "tools" / "otelcol" / name)
    example = re.sub(r"^OTELCOL_VERSION=.*$", f"OTELCOL_VERSION={otelcol_version}",
                     (ROOT / ".env.example").read_text(), flags=re.MULTILINE)
    (tmp_path / ".env.example").write_text(example)
    return tmp_path / "tools" / "build.sh"


def _build_without_go(script: Path, tmp_path: Path, reported: str | None) -> subprocess.CompletedProcess[str]:
    """tools/build.sh otelcol, with no Go on PATH and a cached binary that prints ``reported``."""
    bin_dir = tmp_path / "cache" / "bin"
    if reported is not None:
        bin_dir.mkdir(parents=True)
        (bin_dir / "otelcol").write_text(f"#!/bin/sh\necho '{reported}'\n")
        (bin_dir / "otelcol").chmod(0o755)
    env = {"PATH": NO_GO_PATH, "HOME": str(tmp_path), "OBS_TOOLS_DIR": str(tmp_path / "cache")}
    return subprocess.run(["/usr/bin/bash", str(script), "otelcol"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_binary_of_this_source_is_left_alone_without_go(tmp_path: Path) -> None:
    version = f"{PINS['OTELCOL_VERSION']}+src.{_source_digest()}"
    script = _tree(tmp_path)
    # What build.sh records beside a binary it built: the digest of the recipe that built it.
    recipe = subprocess.run(["/usr/bin/bash", str(script), "--recipe", "otelcol"], capture_output=True, text=True,
                            timeout=60, check=True, env={"PATH": NO_GO_PATH, "HOME": str(tmp_path)}).stdout
    (tmp_path / "cache" / "recipes").mkdir(parents=True)
    (tmp_path / "cache" / "recipes" / "otelcol").write_text(recipe)
    done = _build_without_go(script, tmp_path, f"otelcol version {version}")
    assert done.returncode == 0, done.stderr
    assert f"==> otelcol {version}: up to date" in done.stdout


@pytest.mark.parametrize("reported", [
    None,  # no binary yet
    f"otelcol version {PINS['OTELCOL_VERSION']}+src.000000000000",  # built from another main.go or go.mod
    "otelcol version dev",  # built without build.sh's version flag
])
def test_another_build_needs_go(tmp_path: Path, reported: str | None) -> None:
    done = _build_without_go(_tree(tmp_path), tmp_path, reported)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "'go' is not on PATH, and otelcol must be built" in done.stderr


def test_the_pin_and_go_mod_must_agree(tmp_path: Path) -> None:
    done = _build_without_go(_tree(tmp_path, otelcol_version="0.157.0"), tmp_path, None)
    assert done.returncode == 1
    assert (f"tools/otelcol/go.mod selects go.opentelemetry.io/collector/otelcol {RELEASE}, but OTELCOL_VERSION "
            "in .env.example means v0.157.0") in done.stderr
