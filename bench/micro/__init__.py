"""Micro-benchmarks, each run in a fresh Python process so that one's global state (the tracer
provider, logging handlers, prometheus_client's mode) cannot leak into another's figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.micro.scale import SCALES
from sandbox.common import MissingToolError

ROOT = Path(__file__).resolve().parents[2]
# Name in the results -> module with `measure(scale) -> dict`.
MICRO_BENCHMARKS = {
    "log_format": "bench.micro.log_format",
    "request_path": "bench.micro.request_path",
    "tracing": "bench.micro.tracing",
    "metrics_scrape": "bench.micro.metrics_scrape",
    "export_stalls": "bench.micro.export_stalls",
    "instructions": "bench.micro.instructions",
}
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "BENCH_DATABASE_URL")
_TIMEOUT = 1800  # micro (f) runs 28 interpreters under callgrind


def run_all(scale: str, workdir: Path) -> dict[str, Any]:
    if scale not in SCALES:
        raise ValueError(f"unknown micro-benchmark scale {scale!r}: one of {', '.join(SCALES)}")
    results = {}
    for name in MICRO_BENCHMARKS:
        print(f"==> micro-benchmark {name} ({scale})", file=sys.stderr, flush=True)
        results[name] = run_one(name, scale, workdir)
    return results


def check_tools() -> str:
    """valgrind's path; MissingToolError, naming the package, where a micro-benchmark's program is missing."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise MissingToolError("valgrind is not installed (Debian package `valgrind`); micro-benchmark (f) "
                               "counts instructions with it")
    return valgrind


def run_one(name: str, scale: str, workdir: Path) -> dict[str, Any]:
    """Runs one micro-benchmark in a child Python; its stdout (the project's log lines) goes to /dev/null."""
    out = workdir / f"micro-{name}.json"
    metrics_dir = workdir / f"micro-{name}-metrics"
    metrics_dir.mkdir(exist_ok=True)
    env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
    # Multiprocess mode as under gunicorn; prometheus_client chooses it when it is imported.
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    done = subprocess.run(  # noqa: S603 - our interpreter and module
        [sys.executable, "-m", "bench.micro", name, scale, str(out)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=_TIMEOUT, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"micro-benchmark {name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())
