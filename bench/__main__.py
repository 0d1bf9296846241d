"""`python -m bench` (what `make bench` runs): options on the command line or in BENCH_* variables.

A complete run (every variant and endpoint, full micro-benchmarks) writes bench/results/latest.json
and the README's Performance section. A partial run (fewer variants, endpoints or parts, smoke-sized
micro-benchmarks) writes bench/results/partial.json and leaves the README alone, unless --output or
--readme say otherwise. The Markdown tables are printed either way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, targets
from bench.harness import LoadOptions, run_load, summarise, validate
from bench.load import MissingWrkError
from bench.machine import describe_machine, versions
from bench.micro import check_tools, run_all
from bench.micro.scale import SCALES
from bench.variants import ENDPOINTS, VARIANTS
from sandbox.common import MissingToolError

ROOT = Path(__file__).resolve().parents[1]
LATEST = ROOT / "bench" / "results" / "latest.json"
PARTIAL = ROOT / "bench" / "results" / "partial.json"
README = ROOT / "README.md"
PARTS = ("load", "micro")


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=int(_env("BENCH_ROUNDS", "5")),
                        help="rounds of every variant and endpoint (BENCH_ROUNDS, default 5)")
    parser.add_argument("--duration", type=int, default=int(_env("BENCH_DURATION", "5")),
                        help="seconds of wrk per measurement, whole seconds (BENCH_DURATION, default 5)")
    parser.add_argument("--warmup", type=int, default=int(_env("BENCH_WARMUP", "1")),
                        help="seconds of warm-up per variant and endpoint (BENCH_WARMUP, default 1)")
    parser.add_argument("--connections", type=int, default=int(_env("BENCH_CONNECTIONS", "4")),
                        help="wrk connections (BENCH_CONNECTIONS, default 4)")
    parser.add_argument("--variants", type=_names, default=_names(_env("BENCH_VARIANTS", ",".join(VARIANTS))),
                        help=f"comma-separated, must include bare (BENCH_VARIANTS; all: {','.join(VARIANTS)})")
    parser.add_argument("--endpoints", type=_names, default=_names(_env("BENCH_ENDPOINTS", ",".join(ENDPOINTS))),
                        help=f"comma-separated (BENCH_ENDPOINTS; all: {','.join(ENDPOINTS)})")
    parser.add_argument("--parts", type=_names, default=_names(_env("BENCH_PARTS", ",".join(PARTS))),
                        help="load, micro or both (BENCH_PARTS, default load,micro)")
    parser.add_argument("--micro-scale", choices=tuple(SCALES), default=_env("BENCH_MICRO_SCALE", "full"),
                        help="micro-benchmark sizes (BENCH_MICRO_SCALE, default full)")
    parser.add_argument("--order-seed", type=int, default=int(_env("BENCH_ORDER_SEED", "0")),
                        help="seed of the variants' order in each round (BENCH_ORDER_SEED, default 0)")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON results (default bench/results/latest.json, partial.json for partial runs)")
    parser.add_argument("--readme", default=None,
                        help="README to write the tables into, or `none` (default README.md for complete runs)")
    parser.add_argument("--note", default=os.environ.get("BENCH_NOTE", ""),
                        help="a remark printed above the tables, e.g. that the machine was busy (BENCH_NOTE)")
    return parser.parse_args(argv)


def _is_complete(args: argparse.Namespace) -> bool:
    return (set(args.variants) == set(VARIANTS) and set(args.endpoints) == set(ENDPOINTS)
            and set(args.parts) == set(PARTS) and args.micro_scale == "full")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    unknown_parts = set(args.parts) - set(PARTS)
    if unknown_parts or not args.parts:
        print(f"--parts takes load, micro or both, not {','.join(args.parts)}", file=sys.stderr)
        return 2
    options = LoadOptions(
        variants=args.variants, endpoints=args.endpoints, rounds=args.rounds, duration_s=args.duration,
        warmup_s=args.warmup, connections=args.connections, order_seed=args.order_seed,
        database_url=os.environ.get("BENCH_DATABASE_URL") or None,
    )
    try:
        if "load" in args.parts:
            validate(options)
        if "micro" in args.parts:
            check_tools()
    except (MissingWrkError, MissingToolError, ValueError) as exc:  # the message says what to install or fix
        print(f"make bench: {exc}", file=sys.stderr)
        return 2
    result = _run(args, options)
    _write(args, result)
    return 0


def _run(args: argparse.Namespace, options: LoadOptions) -> dict[str, Any]:
    machine = describe_machine()  # the load average before the run says how busy the machine was
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        load = run_load(options, workdir) if "load" in args.parts else None
        micro = run_all(args.micro_scale, workdir) if "micro" in args.parts else {}
    machine["load_average_end"] = describe_machine()["load_average"]
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": (f"{options.rounds} rounds x {options.duration_s} s" if load else "no load test")
                 + (f", {args.micro_scale} micro-benchmarks" if micro else ", no micro-benchmarks"),
        "note": args.note,
        "machine": machine,
        "versions": versions(load.postgresql if load else None),
        "method": {
            "server": "gunicorn, 1 sync worker per variant, 127.0.0.1; project variants with app/gunicorn.conf.py",
            "load": "wrk, 1 thread, latency percentiles from its done() hook (bench/wrk_report.lua)",
            "rounds": options.rounds, "duration_s": options.duration_s, "warmup_s": options.warmup_s,
            "connections": options.connections, "order_seed": options.order_seed,
            "endpoints": {name: ENDPOINTS[name] for name in options.endpoints},
            "variants": {name: VARIANTS[name].description for name in options.variants},
        },
        "results": summarise(load.samples) if load else [],
        "evidence": load.evidence if load else {},
        "micro": micro,
    }
    result["targets"] = targets.evaluate(result)
    return result


def _write(args: argparse.Namespace, result: dict[str, Any]) -> None:
    complete = _is_complete(args)
    output = args.output or (LATEST if complete else PARTIAL)
    readme = None if args.readme == "none" else Path(args.readme) if args.readme else (README if complete else None)
    markdown = report.render_markdown(result)
    print(markdown)
    report.write_json(output, result)
    print(f"==> results written to {output}", file=sys.stderr)
    if readme is not None:
        report.update_readme(readme, markdown)
        print(f"==> tables written into {readme} (Performance section)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
