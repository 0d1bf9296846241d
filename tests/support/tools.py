"""The Go programs of the pinned tools modules (promtool, amtool, promql-names, …) for tests.

``tool_path(name)`` runs ``tools/build.sh NAME`` once per session: it returns at once when the
cached binary already reports the pinned version, and builds it otherwise (seconds with a warm Go
build cache, minutes cold: ``make tools`` before the tests keeps that out of pytest's timeout).
Without a Go toolchain the test is skipped with the reason, except in CI (``CI=true``), where
nothing may skip, so it fails.

``promql_metric_names(exprs)`` parses PromQL with Prometheus's own parser (``promql-names``) and
returns the metric names each expression selects. Grafana variables such as ``$__rate_interval``
are not PromQL: substitute them before asking.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_DIR / "tools" / "build.sh"
_NO_GO = 3  # build.sh's exit code when a build is needed and no Go toolchain is on PATH


def tools_bin_dir() -> Path:
    """Where tools/build.sh puts its binaries (outside the repository)."""
    root = os.environ.get("OBS_TOOLS_DIR") or Path.home() / ".cache" / "observability-stack" / "tools"
    return Path(root) / "bin"


@functools.cache
def tool_path(name: str) -> Path:
    """The path of the pinned build of ``name``, built first if it is missing or out of date."""
    done = subprocess.run(["bash", str(BUILD_SCRIPT), name], capture_output=True, text=True, check=False)
    output = (done.stdout + done.stderr).strip()
    if done.returncode == _NO_GO:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so this may not skip: {output}", pytrace=False)
        pytest.skip(output)
    if done.returncode != 0:
        pytest.fail(f"tools/build.sh {name} failed (exit {done.returncode}):\n{output}", pytrace=False)
    return tools_bin_dir() / name


def promql_metric_names(exprs: list[str]) -> dict[str, set[str]]:
    """Map each expression to the metric names of its vector selectors.

    Raises AssertionError naming every expression that does not parse, with the parser's message.
    """
    done = subprocess.run(
        [str(tool_path("promql-names"))], input=json.dumps(list(exprs)), capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, f"promql-names failed (exit {done.returncode}): {done.stderr.strip()}"
    results = json.loads(done.stdout)
    errors = [f"  {r['expr']!r}: {r['error']}" for r in results if r["error"] is not None]
    assert not errors, "PromQL that Prometheus cannot parse:\n" + "\n".join(errors)
    return {r["expr"]: set(r["metrics"]) for r in results}
