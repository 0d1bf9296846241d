"""Micro-benchmark (e): how long requests wait while spans are exported, the in-process view of the
tail latency in issue 12.

A sync gunicorn worker's request gives the GIL up at each of its system calls (15 per request, see
bench/README.md) and must get it back before it goes on. While the export thread encodes a batch,
CPython hands it back only after the export thread has run for the switch interval (5 ms unless
set), once per call. Each request here is a WSGI call of the app plus as many one-byte writes to
/dev/null, standing for those calls, timed one by one; the export thread runs as in a worker, its
batches encoded as for the wire and then dropped (no collector's time).

Cases, each in a process of its own forked for it (one tracer provider per process), in a rotated
order over the rounds: bare Flask; the project's full-100 (everything on, 100 % sampled) as shipped
(each span encoded as it ends), with whole batches encoded on the export thread (before that
lever) and without `gc.freeze` (below); OpenTelemetry's own Flask instrumentation + SDK with its
protobuf encoding, as the peer.
Objects alive after warm-up are frozen (`gc.freeze`) in every other case, as the gunicorn
configuration has the master do before each fork: a full collection then skips the app's own objects.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.apps import bare, project
from bench.micro.exporters import DroppedJson, dropped_json_per_batch, dropped_protobuf, otel_peer
from bench.micro.scale import Scale
from bench.micro.timing import rotated
from bench.micro.wsgi_call import request_call
from bench.variants import VARIANTS
from observability import tracing
from observability.config import ObservabilityConfig

BARE = "bare Flask"
PROJECT = "project full-100"
PER_BATCH = "project full-100, whole batches encoded on the export thread"
UNFROZEN = "project full-100, objects not frozen"
OTEL = "OpenTelemetry FlaskInstrumentor + SDK (protobuf)"
CASES = (BARE, PROJECT, PER_BATCH, UNFROZEN, OTEL)
SYSTEM_CALLS = 15  # gunicorn's per request of a sync worker (strace, bench/README.md)
_WARMUP_REQUESTS = 300
_QUANTILES = {"p50_ms": 0.50, "p99_ms": 0.99, "p999_ms": 0.999}


def measure(scale: Scale) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    for index in range(scale.stall_rounds):
        for name in rotated(CASES, index):
            rounds[name].append(_in_a_fresh_process(name, scale.stall_requests))
    cases = {name: _medians(results) for name, results in rounds.items()}
    bare_p99 = cases[BARE]["p99_ms"]
    for figures in cases.values():
        figures["p99_ratio_to_bare"] = round(figures["p99_ms"] / bare_p99, 3)
    return {
        "method": (f"app.wsgi_app(environ, start_response) for GET /trivial plus {SYSTEM_CALLS} one-byte writes "
                   f"to /dev/null standing for gunicorn's system calls, each request timed; {scale.stall_requests} "
                   f"requests per case after {_WARMUP_REQUESTS} of warm-up, each case in a forked process, "
                   f"{scale.stall_rounds} rounds in rotated order, medians over rounds, objects alive after warm-up "
                   "frozen (gc.freeze) but in the case that says not; exporters encode as for the wire (OTLP/JSON "
                   "for the project, protobuf for OpenTelemetry's) and drop the bytes"),
        "requests": scale.stall_requests,
        "rounds": scale.stall_rounds,
        "cases": cases,
    }


def _medians(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(result[key] for result in results), 3) for key in results[0]}


def _in_a_fresh_process(name: str, requests: int) -> dict[str, float]:
    context = multiprocessing.get_context("fork")  # the parent holds no provider and no thread
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(name, requests, send))
    child.start()
    send.close()
    result = receive.recv()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"{name}: the measuring process exited with {child.exitcode}")
    return result


def _child(name: str, requests: int, send: Any) -> None:
    call, flush, spans_exported = _case(name)
    for _ in range(_WARMUP_REQUESTS):
        call()
    if name != UNFROZEN:
        gc.freeze()
    started = time.perf_counter()
    latencies = _timed_requests(call, requests)
    flush()  # spans still queued are work of these requests: their throughput includes it
    elapsed = time.perf_counter() - started
    send.send(_summary(latencies, requests / elapsed, spans_exported() / (requests + _WARMUP_REQUESTS)))


def _case(name: str) -> tuple[Callable[[], object], Callable[[], object], Callable[[], int]]:
    """The request callable of a case, its provider's flush, and how many spans it has exported."""
    if name == BARE:
        return request_call(bare.create_app()), lambda: None, lambda: 0
    if name == OTEL:
        exporter = dropped_protobuf()
        app, provider = otel_peer(exporter)
        return request_call(app), provider.force_flush, lambda: exporter.spans
    config = VARIANTS["full-100"].observability_config(ObservabilityConfig.from_env())
    project_exporter = DroppedJson() if name == PROJECT else dropped_json_per_batch()
    provider = tracing.start_provider(config, project_exporter)
    return request_call(project.create_app(config)), provider.force_flush, lambda: project_exporter.spans


def _timed_requests(call: Callable[[], object], requests: int) -> list[float]:
    sink = os.open(os.devnull, os.O_WRONLY)
    latencies = []
    clock = time.perf_counter_ns
    for _ in range(requests):
        started = clock()
        call()
        for _ in range(SYSTEM_CALLS):
            os.write(sink, b"x")
        latencies.append(clock() - started)
    os.close(sink)
    return latencies


def _summary(latencies_ns: list[float], requests_per_s: float, spans_per_request: float) -> dict[str, float]:
    ordered = sorted(latencies_ns)
    figures = {key: ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1e6 for key, q in _QUANTILES.items()}
    figures["max_ms"] = ordered[-1] / 1e6
    figures["requests_per_s"] = requests_per_s
    figures["spans_per_request"] = spans_per_request
    return figures
