"""One wrk run against one URL, summarised by `wrk_report.lua` as a JSON line."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_REPORT = Path(__file__).with_name("wrk_report.lua")
_MARKER = "BENCH_WRK_JSON "
# A realistic client sends one; both the seed and the project copy it into every access record.
USER_AGENT = "bench/1.0 (wrk; +make bench)"
MISSING_WRK = ("wrk (the HTTP load generator) is not installed. On Debian or Ubuntu: `sudo apt-get install wrk`; "
               "elsewhere build it from its source repository (wg/wrk) and put it on PATH.")


class MissingWrkError(RuntimeError):
    """wrk is not on PATH; the message says how to get it."""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: dict[str, int]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        """Responses that were not 2xx/3xx, and requests that never got a response."""
        return sum(self.errors.values())


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise MissingWrkError(MISSING_WRK)
    return binary


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "not installed"  # a micro-benchmarks-only run does not need it
    # `wrk -v` prints its version line and usage, and exits non-zero.
    done = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0].removeprefix("wrk ").strip() if first else "unknown"


def run_wrk(url: str, seconds: int, connections: int) -> LoadResult:
    """wrk with one thread (the machine's other core serves) for `seconds` (wrk takes whole seconds)."""
    command = [wrk_binary(), "--threads", "1", "--connections", str(connections), "--duration", f"{seconds}s",
               "--timeout", "10s", "--header", f"User-Agent: {USER_AGENT}", "--script", str(WRK_REPORT), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)  # noqa: S603
    line = next((line for line in done.stdout.splitlines() if line.startswith(_MARKER)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}) against {url}:\n{done.stdout}{done.stderr}")
    report = json.loads(line.removeprefix(_MARKER))
    latency = report["latency_us"]
    return LoadResult(
        requests=report["requests"],
        seconds=report["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000, p90_ms=latency["p90"] / 1000, p99_ms=latency["p99"] / 1000,
        errors=report["errors"],
    )
