"""The whole-process benchmark: every variant's gunicorn at once, driven by wrk in rounds.

All servers start first (each with its own port, metrics directory and receiver path) and are
warmed up; then each round drives every endpoint of every variant once, the variants in a freshly
shuffled order (seeded, so a run can be repeated), so slow drifts of a shared machine spread over all
variants. A variant's ratio to bare is computed within each round, against that round's bare run of
the same endpoint, and the median over rounds is reported with the medians of req/s and latencies.
"""

from __future__ import annotations

import random
import statistics
import sys
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import servers
from bench.apps.routes import build_engine, prepare_database
from bench.load import LoadResult, run_wrk, wrk_binary
from bench.servers import Server
from bench.variants import BARE, ENDPOINTS, OTEL, VARIANTS
from sandbox.common import MissingToolError
from sandbox.engines import postgres, redis_server
from sandbox.otlp_receiver import OtlpReceiver

# Failed requests above this share make a measurement meaningless: the harness stops with the log.
_MAX_FAILED_SHARE = 0.01


@dataclass(frozen=True)
class LoadOptions:
    variants: tuple[str, ...]
    endpoints: tuple[str, ...]
    rounds: int
    duration_s: int
    warmup_s: int
    connections: int
    order_seed: int
    database_url: str | None = None


@dataclass(frozen=True)
class Sample:
    round: int
    variant: str
    endpoint: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int
    log_bytes_per_request: float


@dataclass
class LoadRun:
    samples: list[Sample] = field(default_factory=list)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    postgresql: str | None = None


def validate(options: LoadOptions) -> None:
    """Refuses unknown names and missing programs before anything starts (MissingWrkError,
    MissingToolError and ValueError say what is wrong)."""
    unknown = [name for name in options.variants if name not in VARIANTS]
    unknown += [name for name in options.endpoints if name not in ENDPOINTS]
    if unknown:
        raise ValueError(f"unknown variant or endpoint: {', '.join(unknown)} "
                         f"(variants: {', '.join(VARIANTS)}; endpoints: {', '.join(ENDPOINTS)})")
    if BARE not in options.variants:
        raise ValueError("the variants must include `bare`: every ratio is taken against it")
    if options.rounds < 1 or options.duration_s < 1 or options.connections < 1 or options.warmup_s < 0:
        raise ValueError("rounds, duration and connections must be at least 1 (wrk counts whole seconds)")
    wrk_binary()
    redis_server.find_binary()
    if "db" in options.endpoints and not options.database_url:
        try:
            postgres.find_bindir()
        except MissingToolError as exc:
            raise MissingToolError(f"{exc}; or set BENCH_DATABASE_URL, or drive only `trivial`") from None


def run_load(options: LoadOptions, workdir: Path) -> LoadRun:
    run = LoadRun()
    with ExitStack() as stack:
        redis = stack.enter_context(closing(redis_server.LocalRedis.start_new(workdir)))
        database_url = None
        if "db" in options.endpoints:
            database_url = options.database_url or throwaway_database(workdir, stack)
            run.postgresql = prepare(database_url)
        receiver = stack.enter_context(closing(OtlpReceiver()))
        pointed_at = servers.Backends(receiver, redis.url, database_url)
        started = {}
        for name in options.variants:
            _progress(f"starting gunicorn for {name}")
            server = servers.start(VARIANTS[name], workdir, pointed_at)
            stack.callback(server.stop)
            started[name] = server
        warm_up_requests = _warm_up(started, options)
        run.samples = list(_rounds(started, options))
        counted = {name: servers.scrape_request_count(server) for name, server in started.items()}
        for server in started.values():
            server.stop()  # a graceful stop flushes the exporters' last spans to the receiver
        run.evidence = _evidence(run.samples, counted, receiver, warm_up_requests)
    return run


def throwaway_database(workdir: Path, stack: ExitStack) -> str:
    """A PostgreSQL of the run's own, deleted with ``stack``; its SQLAlchemy URL."""
    _progress("starting PostgreSQL")
    cluster = postgres.throwaway_cluster(workdir)
    stack.callback(cluster.destroy)
    return cluster.dsn


def prepare(database_url: str) -> str:
    """Creates the table `db` reads; returns the server's version."""
    engine = build_engine(database_url)
    assert engine is not None
    try:
        prepare_database(engine)
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one()).split(" ")[0]
    finally:
        engine.dispose()


def _warm_up(started: dict[str, Server], options: LoadOptions) -> dict[str, int]:
    """Requests served per variant while warming up (they export spans too)."""
    served = dict.fromkeys(started, 0)
    if options.warmup_s == 0:
        return served
    _progress(f"warming up: {options.warmup_s} s per variant and endpoint")
    for name, server in started.items():
        for endpoint in options.endpoints:
            served[name] += _measure(server, endpoint, options.warmup_s, options.connections).requests
        server.take_log_bytes()
    return served


def _rounds(started: dict[str, Server], options: LoadOptions) -> Iterator[Sample]:
    order = list(options.variants)
    shuffle = random.Random(options.order_seed).shuffle  # noqa: S311 - an order to repeat, not a secret
    for round_index in range(1, options.rounds + 1):
        shuffle(order)
        for endpoint in options.endpoints:
            for name in order:
                server = started[name]
                server.take_log_bytes()  # what the server wrote between measurements is not counted
                result = _measure(server, endpoint, options.duration_s, options.connections)
                sample = Sample(
                    round=round_index, variant=name, endpoint=endpoint,
                    requests_per_s=result.requests_per_s, p50_ms=result.p50_ms, p99_ms=result.p99_ms,
                    requests=result.requests, failed=result.failed,
                    log_bytes_per_request=server.take_log_bytes() / result.requests,
                )
                _progress(f"round {round_index}/{options.rounds} {endpoint:7} {name:13} "
                          f"{sample.requests_per_s:8.0f} req/s  p50 {sample.p50_ms:6.2f} ms  "
                          f"p99 {sample.p99_ms:6.2f} ms")
                yield sample


def _measure(server: Server, endpoint: str, seconds: int, connections: int) -> LoadResult:
    server.check_alive()
    result = run_wrk(server.url(ENDPOINTS[endpoint]), seconds, connections)
    if result.requests == 0 or result.failed > _MAX_FAILED_SHARE * result.requests:
        raise RuntimeError(f"{server.variant.name} {endpoint}: {result.failed} of {result.requests} requests "
                           f"failed ({result.errors}):\n{server.log_tail()}")
    return result


def _evidence(samples: list[Sample], counted: dict[str, float | None], receiver: OtlpReceiver,
              warm_up_requests: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per variant, proof that its instrumentation ran: spans exported, requests counted in metrics.
    `otlp_spans` over `requests_served` (warm-up included) shows a variant whose exporter could not
    keep up: its queue overflowed and the SDK dropped spans."""
    evidence = {}
    for name, metrics_count in counted.items():
        exports = receiver.counts(name)
        measured = sum(s.requests for s in samples if s.variant == name)
        evidence[name] = {
            "otlp_exports": exports.requests,
            "otlp_bytes": exports.bytes,
            "otlp_spans": exports.spans,
            "otlp_unreadable": exports.unreadable,
            "http_requests_total": metrics_count,
            "requests_measured": measured,
            "requests_served": measured + warm_up_requests.get(name, 0),
        }
    return evidence


def summarise(samples: list[Sample]) -> list[dict[str, Any]]:
    """Medians per variant and endpoint; `ratio_to_bare`, `p99_ratio_to_bare` (and the time added per
    request) are medians of per-round figures, each against the same round's bare run of the same
    endpoint; `ratio_to_otel` likewise against the `otel` peer where it ran."""
    bare = {(s.round, s.endpoint): s.requests_per_s for s in samples if s.variant == BARE}
    bare_p99 = {(s.round, s.endpoint): s.p99_ms for s in samples if s.variant == BARE}
    otel = {(s.round, s.endpoint): s.requests_per_s for s in samples if s.variant == OTEL}
    summary = []
    for variant, endpoint in dict.fromkeys((s.variant, s.endpoint) for s in samples):
        mine = [s for s in samples if s.variant == variant and s.endpoint == endpoint]
        ratios = [s.requests_per_s / bare[(s.round, endpoint)] for s in mine]
        p99_ratios = [s.p99_ms / bare_p99[(s.round, endpoint)] for s in mine]
        to_otel = [s.requests_per_s / otel[(s.round, endpoint)] for s in mine if (s.round, endpoint) in otel]
        # One saturated worker: 1/throughput is its time per request, so the difference is the
        # instrumentation's time per request, comparable with the micro-benchmarks.
        added_us = [1e6 / s.requests_per_s - 1e6 / bare[(s.round, endpoint)] for s in mine]
        summary.append({
            "variant": variant,
            "endpoint": endpoint,
            "requests_per_s": round(statistics.median(s.requests_per_s for s in mine), 1),
            "p50_ms": round(statistics.median(s.p50_ms for s in mine), 3),
            "p99_ms": round(statistics.median(s.p99_ms for s in mine), 3),
            "ratio_to_bare": round(statistics.median(ratios), 3),
            "p99_ratio_to_bare": round(statistics.median(p99_ratios), 2),
            "ratio_to_otel": round(statistics.median(to_otel), 3) if to_otel else None,
            "added_us_per_request": round(statistics.median(added_us), 1),
            "rounds": len(mine),
            "log_bytes_per_request": round(statistics.median(s.log_bytes_per_request for s in mine), 1),
            "failed_requests": sum(s.failed for s in mine),
            "samples": [{"round": s.round, "requests_per_s": round(s.requests_per_s, 1), "p50_ms": s.p50_ms,
                         "p99_ms": s.p99_ms, "ratio_to_bare": round(ratio, 4), "p99_ratio_to_bare": round(p99, 3)}
                        for s, ratio, p99 in zip(mine, ratios, p99_ratios, strict=True)],
        })
    order = {name: index for index, name in enumerate(VARIANTS)}
    endpoints = {name: index for index, name in enumerate(ENDPOINTS)}
    return sorted(summary, key=lambda row: (endpoints[row["endpoint"]], order[row["variant"]]))


def _progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)
