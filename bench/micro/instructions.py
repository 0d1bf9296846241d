"""Micro-benchmark (f): machine instructions per request, counted by valgrind's callgrind: a figure
that a busy machine cannot move.

Timings on a shared VM varied 2x between runs of one day (bench/README.md); the number of
instructions a request executes does not depend on who else runs. Each case runs twice under
callgrind in its own interpreter (`python -m bench.micro.instructions CASE ENDPOINT N`), with a different
number of requests after the same warm-up; the difference divided by the difference in requests is
what one request costs, start-up and warm-up cancelled out. Instructions are not time (a cache miss
costs more than an addition, a system call is not counted at all), so this checks the timed tables
rather than replacing them. Both routes in-process; `db` against a throwaway PostgreSQL of its own
(or BENCH_DATABASE_URL's), whose round trips cost every case alike.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.micro import check_tools
from bench.micro.scale import Scale

BARE = "bare Flask"
OTEL = "OpenTelemetry FlaskInstrumentor + SDK"
# Case -> bench variant whose configuration it runs (None: bare Flask, or OpenTelemetry's own).
CASES: dict[str, str | None] = {
    BARE: None,
    OTEL: None,
    "project tracing-only": "tracing-only",
    "project full-100": "full-100",
    "project full-default": "full-default",
    "project logs-only": "logs-only",
    "project metrics-only": "metrics-only",
}
SMOKE_CASES = (BARE, "project tracing-only")
ENDPOINTS = ("trivial", "db")
_WARM_UP = 100
_COLLECTED = re.compile(r"Collected : (\d+)")
_TIMEOUT = 900


def measure(scale: Scale) -> dict[str, Any]:
    valgrind = check_tools()
    names = list(CASES) if scale.name == "full" else list(SMOKE_CASES)
    fewer, more = scale.counted_requests
    runs = [(name, endpoint) for endpoint in ENDPOINTS for name in names]
    with _database() as database_url, ThreadPoolExecutor(max_workers=2) as pool:
        counter = _Counter(valgrind, database_url, fewer, more)
        # Two at a time: the counts do not depend on what else runs, so the machine's two cores serve.
        counts = list(pool.map(lambda run: counter.per_request(*run), runs))
    by_endpoint: dict[str, dict[str, int]] = {endpoint: {} for endpoint in ENDPOINTS}
    for (name, endpoint), count in zip(runs, counts, strict=True):
        by_endpoint[endpoint][name] = count
    return {
        "method": (f"valgrind --tool=callgrind, GET /trivial or /db through app.wsgi_app in a fresh interpreter "
                   f"(PYTHONHASHSEED=0; db: one SELECT on a local PostgreSQL), {_WARM_UP} warm-up requests then "
                   f"{fewer} or {more}; instructions per request = the difference of the two runs' totals ÷ "
                   f"{more - fewer}, all threads of the interpreter counted (the export threads' encoding too, "
                   "PostgreSQL's own work not); *ratio to bare* = bare's instructions ÷ the case's, what a "
                   "CPU-bound worker's throughput ratio would be"),
        "requests": [fewer, more],
        "endpoints": {endpoint: _compared(counted) for endpoint, counted in by_endpoint.items()},
    }


def _compared(counts: dict[str, int]) -> dict[str, Any]:
    bare = counts[BARE]
    compared: dict[str, Any] = {
        "cases": {name: {"instructions": count, "ratio_to_bare": round(bare / count, 3)}
                  for name, count in counts.items()}}
    if OTEL in counts and "project tracing-only" in counts:
        compared["tracing_only_throughput_to_otel"] = round(counts[OTEL] / counts["project tracing-only"], 3)
        compared["tracing_part_to_otel"] = round((counts["project tracing-only"] - bare) / (counts[OTEL] - bare), 3)
    return compared


@contextmanager
def _database() -> Iterator[str]:
    """BENCH_DATABASE_URL, else a throwaway PostgreSQL deleted afterwards; the table `db` reads, filled."""
    from bench import harness  # noqa: PLC0415 - not in the counted child

    # The cluster is stopped (the stack) before its directory goes.
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as workdir, ExitStack() as stack:
        url = os.environ.get("BENCH_DATABASE_URL") or harness.throwaway_database(Path(workdir), stack)
        harness.prepare(url)
        yield url


@dataclass(frozen=True)
class _Counter:
    valgrind: str
    database_url: str
    fewer: int
    more: int

    def per_request(self, name: str, endpoint: str) -> int:
        # Once without valgrind first: the modules' bytecode is written then (a fresh virtualenv has
        # none), not in whichever counted run comes first.
        self._run([], name, endpoint, 0)
        counted = self._instructions(name, endpoint, self.more) - self._instructions(name, endpoint, self.fewer)
        return counted // (self.more - self.fewer)

    def _instructions(self, name: str, endpoint: str, requests: int) -> int:
        callgrind = [self.valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        done = self._run(callgrind, name, endpoint, requests)
        found = _COLLECTED.search(done.stderr)
        if done.returncode != 0 or found is None:
            raise RuntimeError(f"callgrind run of {name!r} on {endpoint} failed ({done.returncode}):\n"
                               f"{done.stderr[-4000:]}")
        return int(found.group(1))

    def _run(self, prefix: list[str], name: str, endpoint: str, requests: int) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONHASHSEED": "0", "BENCH_DATABASE_URL": self.database_url}
        return subprocess.run(  # noqa: S603 - valgrind running our interpreter and module
            [*prefix, sys.executable, "-m", "bench.micro.instructions", name, endpoint, str(requests)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=_TIMEOUT, check=False)


def _request(name: str, endpoint: str) -> tuple[Callable[[], int], Callable[[], object]]:
    """The case's request and what flushes the spans it leaves queued."""
    from bench.apps import bare, project  # noqa: PLC0415 - imported in the counted child only
    from bench.apps.routes import build_engine  # noqa: PLC0415
    from bench.micro.exporters import DroppedJson, dropped_protobuf, otel_peer  # noqa: PLC0415
    from bench.micro.wsgi_call import request_call  # noqa: PLC0415
    from bench.variants import VARIANTS  # noqa: PLC0415
    from observability import tracing  # noqa: PLC0415
    from observability.config import ObservabilityConfig  # noqa: PLC0415

    path = f"/{endpoint}"
    engine = build_engine(os.environ["BENCH_DATABASE_URL"]) if endpoint == "db" else None
    if name == BARE:
        return request_call(bare.create_app(engine), path), lambda: None
    if name == OTEL:
        app, provider = otel_peer(dropped_protobuf(), engine)
        return request_call(app, path), provider.force_flush
    config = VARIANTS[str(CASES[name])].observability_config(ObservabilityConfig.from_env())
    flush: Callable[[], object] = lambda: None  # noqa: E731
    if config.tracing_enabled:
        flush = tracing.start_provider(config, DroppedJson()).force_flush
    return request_call(project.create_app(config, engine), path), flush


def _count(name: str, endpoint: str, requests: int) -> None:
    """Runs under callgrind: the same warm-up in every run, then `requests` requests."""
    call, flush = _request(name, endpoint)
    for _ in range(_WARM_UP):
        call()
    flush()
    for _ in range(requests):
        call()
    flush()


if __name__ == "__main__":
    _count(sys.argv[1], sys.argv[2], int(sys.argv[3]))
