"""The pinned Go programs the native sandbox runs (each component's ``go_tool``; tools/go-tools.txt
lists every program), built by ``tools/build.sh`` into a cache outside the repository.

``ensure(names)`` runs the script: it returns in milliseconds when every binary already reports its
pinned version, and builds the others (seconds with a warm Go build cache, minutes cold), showing
go's progress. Without a Go toolchain and without the binaries, MissingToolError says so.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

from sandbox.common import MissingToolError
from sandbox.env import ROOT

BUILD_SCRIPT = ROOT / "tools" / "build.sh"
_NO_GO = 3  # build.sh's exit code when a build is needed and no Go toolchain is on PATH
_BUILD_TIMEOUT = 1800.0  # per call (one program, mostly): Jaeger's cold build took 12 min on 2 busy cores


def bin_dir() -> Path:
    """Where tools/build.sh puts its binaries (``OBS_TOOLS_DIR``, else ~/.cache/observability-stack/tools)."""
    root = os.environ.get("OBS_TOOLS_DIR") or Path.home() / ".cache" / "observability-stack" / "tools"
    return Path(root) / "bin"


def path(name: str) -> Path:
    return bin_dir() / name


def ensure(names: Iterable[str]) -> None:
    """Build whichever of ``names`` is missing or not the pinned version; print only what it builds."""
    wanted = list(names)
    if not wanted:
        return
    process = subprocess.Popen(  # noqa: S603 - our own script, fixed names
        ["bash", str(BUILD_SCRIPT), *wanted], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # noqa: S607
        stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    assert process.stdout is not None
    watchdog = threading.Timer(_BUILD_TIMEOUT, process.kill)  # a hung build must not hang `make up`
    watchdog.start()
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if ": up to date (" not in line:  # a build is news; a cached binary is not
                print(f"  {line.rstrip()}", flush=True)
        returncode = process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    text = "".join(output).strip()
    if returncode < 0:
        raise RuntimeError(f"tools/build.sh {' '.join(wanted)} did not finish within {_BUILD_TIMEOUT:.0f}s:\n{text}")
    if returncode == _NO_GO:
        raise MissingToolError(text)
    if returncode != 0:
        raise RuntimeError(f"tools/build.sh {' '.join(wanted)} failed (exit {returncode}):\n{text}")
