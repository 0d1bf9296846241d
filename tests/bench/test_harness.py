"""`python -m bench` end to end in its smallest form, and the ratio arithmetic on its own.

The end-to-end run is one round of one second (wrk counts whole seconds) of bare, seed and full-100
on both endpoints (a throwaway PostgreSQL starts in about a second here, so `db` is kept), with
smoke-sized micro-benchmarks, into a temporary file: the README and bench/results/latest.json are
never touched. It checks the output's shape and sanity, never timings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.harness import Sample, summarise
from sandbox.common import MissingToolError
from sandbox.engines import postgres

ROOT = Path(__file__).resolve().parents[2]
LATEST = ROOT / "bench" / "results" / "latest.json"
VARIANTS = ("bare", "seed", "full-100")
ENDPOINTS = ("trivial", "db")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so this may not skip: {reason}", pytrace=False)
    pytest.skip(reason)


def _require_programs() -> None:
    for program, package in (("wrk", "wrk"), ("redis-server", "redis-server"), ("valgrind", "valgrind")):
        if shutil.which(program) is None:
            _skip_or_fail(f"{program} is not installed (Debian package `{package}`)")
    try:
        postgres.find_bindir()
    except MissingToolError as exc:
        _skip_or_fail(str(exc))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    _require_programs()
    output = tmp_path_factory.mktemp("bench") / "results.json"
    latest_before = LATEST.stat().st_mtime_ns if LATEST.exists() else None
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--rounds", "1", "--duration", "1", "--warmup", "0",
         "--variants", ",".join(VARIANTS), "--endpoints", ",".join(ENDPOINTS), "--parts", "load,micro",
         "--micro-scale", "smoke", "--output", str(output), "--readme", "none"],
        cwd=ROOT, capture_output=True, text=True, timeout=540, check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert (LATEST.stat().st_mtime_ns if LATEST.exists() else None) == latest_before
    return json.loads(output.read_text()), done.stdout


@pytest.mark.timeout(560)
def test_every_requested_variant_and_endpoint_is_measured(smoke_run) -> None:
    result, _ = smoke_run
    measured = {(row["variant"], row["endpoint"]) for row in result["results"]}
    assert measured == {(variant, endpoint) for variant in VARIANTS for endpoint in ENDPOINTS}
    for row in result["results"]:
        assert row["requests_per_s"] > 0, row
        assert row["ratio_to_bare"] > 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"], row
        assert row["rounds"] == 1
        assert row["failed_requests"] == 0, row
        if row["variant"] == "bare":
            assert row["ratio_to_bare"] == 1.0


@pytest.mark.timeout(560)
def test_instrumented_variants_leave_evidence_and_bare_none(smoke_run) -> None:
    result, _ = smoke_run
    logs = {(row["variant"], row["endpoint"]): row["log_bytes_per_request"] for row in result["results"]}
    evidence = result["evidence"]
    for endpoint in ENDPOINTS:
        assert logs[("bare", endpoint)] == 0
        assert logs[("seed", endpoint)] > 100  # one JSON access record per request
        assert logs[("full-100", endpoint)] > 100
    assert evidence["bare"]["otlp_exports"] == 0
    assert evidence["seed"]["otlp_bytes"] > 0
    assert evidence["full-100"]["otlp_bytes"] > 0
    # Every request served was traced, and every span reached the receiver in a readable export.
    assert evidence["full-100"]["otlp_spans"] >= evidence["full-100"]["requests_served"] > 0
    assert evidence["full-100"]["otlp_unreadable"] == evidence["seed"]["otlp_unreadable"] == 0
    assert evidence["bare"]["otlp_spans"] == 0
    # The master's metrics listener counted what the worker served (a few more: readiness probes).
    assert evidence["full-100"]["http_requests_total"] >= evidence["full-100"]["requests_measured"]


@pytest.mark.timeout(560)
def test_output_names_machine_versions_micro_and_targets(smoke_run) -> None:
    result, markdown = smoke_run
    assert {"cores", "cpu_model", "kernel", "python", "load_average"} <= result["machine"].keys()
    assert {"flask", "gunicorn", "opentelemetry-sdk", "prometheus-client", "python-json-logger", "orjson",
            "sqlalchemy", "psycopg", "wrk", "postgresql"} <= result["versions"].keys()
    assert set(result["micro"]) == {"log_format", "request_path", "tracing", "metrics_scrape", "export_stalls",
                                    "instructions"}
    assert all(f["records_per_s"] > 0 for f in result["micro"]["log_format"]["formatters"].values())
    # One span per timed request on both sides: neither skipped the encoding of spans it dropped.
    traced = result["micro"]["tracing"]["cases"]
    assert traced["project tracing-only"]["spans_per_request"] == traced["OpenTelemetry FlaskInstrumentor + SDK"][
        "spans_per_request"] == 1
    stalls = result["micro"]["export_stalls"]["cases"]
    assert stalls["bare Flask"]["spans_per_request"] == 0
    assert all(case["spans_per_request"] >= 1 and case["p99_ms"] > 0
               for name, case in stalls.items() if name != "bare Flask")
    assert all(s["counts_preserved"] for s in result["micro"]["metrics_scrape"]["scenarios"])
    counted = result["micro"]["instructions"]["endpoints"]
    assert set(counted) == {"trivial", "db"}
    for endpoint in counted.values():
        # Tracing executes instructions of its own: a count that does not see them counts nothing.
        cases = endpoint["cases"]
        assert cases["project tracing-only"]["instructions"] > cases["bare Flask"]["instructions"] > 10_000
    # A database round trip costs instructions of its own (the driver's, SQLAlchemy's).
    bare = {endpoint: counted[endpoint]["cases"]["bare Flask"]["instructions"] for endpoint in counted}
    assert bare["db"] > bare["trivial"]
    assert [t["name"] for t in result["targets"]] == [
        "full_100_trivial_ratio", "full_default_trivial_ratio", "full_100_db_ratio", "full_default_db_ratio",
        "logs_only_trivial_ratio", "metrics_only_trivial_ratio",
        "tracing_only_trivial_to_otel", "tracing_only_db_to_otel", "full_default_trivial_to_otel",
        "full_default_db_to_otel",
        "full_100_trivial_p99_ratio", "full_100_db_p99_ratio", "tracing_only_trivial_p99_ratio",
        "tracing_only_db_p99_ratio", "full_default_trivial_p99_ratio", "full_default_db_p99_ratio",
        "request_path_overhead_us", "tracing_part_ratio_to_otel", "metrics_scrape_4_workers_100_restarts_ms"]
    assert "| Endpoint | Variant |" in markdown
    assert "*Machine:*" in markdown
    assert "### Micro (e): requests while spans are exported" in markdown
    assert "### Micro (f): instructions per request" in markdown


def _sample(round_: int, variant: str, rps: float, p99_ms: float = 2.0) -> Sample:
    return Sample(round=round_, variant=variant, endpoint="trivial", requests_per_s=rps, p50_ms=1.0,
                  p99_ms=p99_ms, requests=int(rps), failed=0, log_bytes_per_request=0.0)


def test_ratio_is_taken_against_the_same_rounds_bare() -> None:
    # Round 2 is twice as fast for everyone (a quieter machine): the ratio must not move.
    samples = [_sample(1, "bare", 1000), _sample(1, "seed", 400), _sample(2, "bare", 2000), _sample(2, "seed", 800),
               _sample(3, "bare", 1000), _sample(3, "seed", 500)]
    rows = {row["variant"]: row for row in summarise(samples)}
    assert rows["seed"]["ratio_to_bare"] == 0.4
    assert rows["seed"]["requests_per_s"] == 500
    assert rows["bare"]["ratio_to_bare"] == 1.0
    assert rows["seed"]["rounds"] == 3
    # 1/400 - 1/1000 s, 1/800 - 1/2000 s, 1/500 - 1/1000 s: the median is 1,000 µs.
    assert rows["seed"]["added_us_per_request"] == 1000.0
    assert rows["bare"]["added_us_per_request"] == 0.0
    assert rows["seed"]["ratio_to_otel"] is None  # no otel in these rounds


def test_tail_and_peer_ratios_are_taken_within_each_round() -> None:
    # Bare's p99 doubles in round 2 (a noisier round): the p99 ratio stays, as the throughput ratio does.
    samples = [_sample(1, "bare", 1000, p99_ms=2.0), _sample(1, "otel", 400), _sample(1, "tracing-only", 600, 8.0),
               _sample(2, "bare", 1000, p99_ms=4.0), _sample(2, "otel", 500), _sample(2, "tracing-only", 750, 16.0),
               _sample(3, "bare", 1000, p99_ms=2.0), _sample(3, "otel", 300), _sample(3, "tracing-only", 480, 10.0)]
    rows = {row["variant"]: row for row in summarise(samples)}
    assert rows["tracing-only"]["p99_ratio_to_bare"] == 4.0  # 4, 4 and 5
    assert rows["tracing-only"]["ratio_to_otel"] == 1.5  # 1.5, 1.5 and 1.6
    assert rows["otel"]["ratio_to_otel"] == 1.0 and rows["bare"]["p99_ratio_to_bare"] == 1.0
    assert [s["p99_ratio_to_bare"] for s in rows["tracing-only"]["samples"]] == [4.0, 4.0, 5.0]
