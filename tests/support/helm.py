"""deploy/helm/'s chart rendered by the pinned Helm (``helm template``, no cluster), for tests.

``helm`` is built by ``make tools`` (``tools/build.sh helm``, cached outside the repository; a cold
build takes minutes, so pytest does not start one). Without it the test is skipped with the reason,
except in CI (``CI=true``), where nothing may skip, so it fails.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import tools_bin_dir

REPO_DIR = Path(__file__).resolve().parents[2]
CHART = REPO_DIR / "deploy" / "helm" / "episodes-api"
RELEASE = "episodes-api"
NAMESPACE = "episodes"


def helm_path() -> Path:
    """The cached Helm binary; skips (fails in CI) when it has not been built."""
    helm = tools_bin_dir() / "helm"
    if not os.access(helm, os.X_OK):
        reason = f"no helm at {helm}: `make tools` (or tools/build.sh helm) builds it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so this may not skip: {reason}", pytrace=False)
        pytest.skip(reason)
    return helm


def render_manifests(values: dict[str, Any] | None = None) -> str:
    """The chart's objects as Helm prints them: one multi-document YAML text, ``values`` over the
    chart's own values.yaml."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [str(helm_path()), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        if values is not None:
            values_file = Path(scratch) / "values.yaml"
            values_file.write_text(yaml.safe_dump(values))
            command += ["--values", str(values_file)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"helm template failed (exit {done.returncode}):\n{done.stderr.strip()}"
    return done.stdout


def render_chart(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's objects, parsed; the empty documents of templates that rendered nothing left out."""
    return [doc for doc in yaml.safe_load_all(render_manifests(values)) if doc]
