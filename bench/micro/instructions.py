"""Micro-benchmark (f): machine instructions per request, counted by valgrind's callgrind: a figure
that a busy machine cannot move.

Timings on a shared VM varied 2x between runs of one day (bench/README.md); the number of
instructions a request executes does not depend on who else runs. Each case runs twice under
callgrind in its own interpreter (`python -m bench.micro.instructions CASE N`), with a different
number of requests after the same warm-up; the difference divided by the difference in requests is
what one request costs, start-up and warm-up cancelled out. Instructions are not time (a cache miss
costs more than an addition, a system call is not counted at all), so this checks the timed tables
rather than replacing them. In-process on `trivial` only; the `db` route was counted by hand once
(bench/README.md, "The `db` route, counted").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
_WARM_UP = 100
_COLLECTED = re.compile(r"Collected : (\d+)")
_TIMEOUT = 900


def measure(scale: Scale) -> dict[str, Any]:
    valgrind = check_tools()
    names = list(CASES) if scale.name == "full" else list(SMOKE_CASES)
    fewer, more = scale.counted_requests
    # Two at a time: the counts do not depend on what else runs, so the machine's two cores serve.
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(names, pool.map(lambda name: _per_request(valgrind, name, fewer, more), names),
                          strict=True))
    bare = counts[BARE]
    cases = {name: {"instructions": count, "ratio_to_bare": round(bare / count, 3)} for name, count in counts.items()}
    result: dict[str, Any] = {
        "method": (f"valgrind --tool=callgrind, GET /trivial through app.wsgi_app in a fresh interpreter "
                   f"(PYTHONHASHSEED=0), {_WARM_UP} warm-up requests then {fewer} or {more}; instructions per request "
                   f"= the difference of the two runs' totals ÷ {more - fewer}, all threads counted (the export "
                   "threads' encoding too); *ratio to bare* = bare's instructions ÷ the case's, what a CPU-bound "
                   "worker's throughput ratio would be"),
        "requests": [fewer, more],
        "cases": cases,
    }
    if OTEL in counts and "project tracing-only" in counts:
        result["tracing_only_throughput_to_otel"] = round(counts[OTEL] / counts["project tracing-only"], 3)
        result["tracing_part_to_otel"] = round((counts["project tracing-only"] - bare) / (counts[OTEL] - bare), 3)
    return result


def _per_request(valgrind: str, name: str, fewer: int, more: int) -> int:
    return (_instructions(valgrind, name, more) - _instructions(valgrind, name, fewer)) // (more - fewer)


def _instructions(valgrind: str, name: str, requests: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(  # noqa: S603 - valgrind running our interpreter and module
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "bench.micro.instructions", name, str(requests)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=_TIMEOUT, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {name!r} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return int(found.group(1))


def _request(name: str) -> tuple[Callable[[], int], Callable[[], object]]:
    """The case's request and what flushes the spans it leaves queued."""
    from bench.apps import bare, project  # noqa: PLC0415 - imported in the counted child only
    from bench.micro.exporters import DroppedJson, dropped_protobuf, otel_peer  # noqa: PLC0415
    from bench.micro.wsgi_call import request_call  # noqa: PLC0415
    from bench.variants import VARIANTS  # noqa: PLC0415
    from observability import tracing  # noqa: PLC0415
    from observability.config import ObservabilityConfig  # noqa: PLC0415

    if name == BARE:
        return request_call(bare.create_app()), lambda: None
    if name == OTEL:
        app, provider = otel_peer(dropped_protobuf())
        return request_call(app), provider.force_flush
    config = VARIANTS[str(CASES[name])].observability_config(ObservabilityConfig.from_env())
    flush: Callable[[], object] = lambda: None  # noqa: E731
    if config.tracing_enabled:
        flush = tracing.start_provider(config, DroppedJson()).force_flush
    return request_call(project.create_app(config)), flush


def _count(name: str, requests: int) -> None:
    """Runs under callgrind: the same warm-up in every run, then `requests` requests."""
    call, flush = _request(name)
    for _ in range(_WARM_UP):
        call()
    flush()
    for _ in range(requests):
        call()
    flush()


if __name__ == "__main__":
    _count(sys.argv[1], int(sys.argv[2]))
