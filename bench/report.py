"""The results as JSON (`bench/results/latest.json`) and as Markdown (printed, and written into the
README between `<!-- bench:start -->` and `<!-- bench:end -->`; only this module writes there).

Every table is captioned with the machine and the method that produced it: a figure without both
cannot be compared with anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

START_MARKER = "<!-- bench:start -->"
END_MARKER = "<!-- bench:end -->"


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


def replace_between_markers(document: str, block: str) -> str:
    """`document` with everything between the markers replaced by `block`; the rest untouched."""
    start = document.find(START_MARKER)
    end = document.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {START_MARKER} … {END_MARKER} pair to write the results between")
    return f"{document[:start + len(START_MARKER)]}\n{block.strip()}\n{document[end:]}"


def update_readme(path: Path, block: str) -> None:
    path.write_text(replace_between_markers(path.read_text(), block))


def machine_label(machine: dict[str, Any]) -> str:
    start, end = machine.get("load_average") or [], machine.get("load_average_end") or []
    busy = f", load average {start[0]} at start" if start else ""
    busy += f" and {end[0]} at end" if end else ""
    return (f"{machine['cores']} cores of {machine['cpu_model']}, {machine['memory_mb']} MB, {machine['kernel']}, "
            f"{machine['python']}{busy}")


def render_markdown(result: dict[str, Any]) -> str:
    parts = [f"Run of {result['generated_at']} (`make bench`, {result['scale']})."]
    if result.get("note"):
        parts.append(f"> **Note:** {result['note']}")
    if result["results"]:
        parts.append(_load_section(result))
    micro = result.get("micro") or {}
    if micro:
        parts.extend(section(result, micro) for section in _MICRO_SECTIONS if section.__name__[1:] in micro)
        parts.append(_targets_section(result))
    return "\n\n".join(parts) + "\n"


def _caption(result: dict[str, Any], method: str) -> str:
    return f"*Machine:* {machine_label(result['machine'])}. *Method:* {method}."


def _load_section(result: dict[str, Any]) -> str:
    method = result["method"]
    versions = result["versions"]
    how = (f"gunicorn {versions['gunicorn']} with 1 sync worker, wrk {versions['wrk']} with 1 thread and "
           f"{method['connections']} connections on 127.0.0.1 (both on this machine), {method['rounds']} rounds x "
           f"{method['duration_s']} s after {method['warmup_s']} s of warm-up, variants in shuffled order each "
           "round; medians over rounds; *ratio* is the median of each round's req/s ÷ bare's in that round; "
           "+µs/req is 1/req/s minus bare's, the worker's added time per request (same per-round median); "
           "*p99 ratio* is p99 ÷ bare's p99 in the same round, *÷ otel* req/s ÷ the otel peer's in the same "
           "round (medians); log B/req is what the server wrote to its stdout/stderr file per request")
    rows = ["| Endpoint | Variant | req/s | ratio | ÷ otel | +µs/req | p50 ms | p99 ms | p99 ratio | log B/req |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {r['endpoint']} | {r['variant']} | {r['requests_per_s']:,.0f} | {r['ratio_to_bare']:.2f} | "
             f"{_optional(r.get('ratio_to_otel'))} | {r['added_us_per_request']:,.0f} | {r['p50_ms']:.2f} | "
             f"{r['p99_ms']:.2f} | {_optional(r.get('p99_ratio_to_bare'))} | {r['log_bytes_per_request']:,.0f} |"
             for r in result["results"]]
    evidence = result.get("evidence") or {}
    spans = ", ".join(f"{name} {e['otlp_bytes'] / 1024:,.0f} KB in {e['otlp_exports']} exports"
                      + _spans_per_request(e) for name, e in evidence.items() if e["otlp_exports"])
    lines = ["### Whole process: gunicorn under wrk", _caption(result, how), "\n".join(rows)]
    if spans:
        lines.append(f"Traces received over OTLP/HTTP by the discarding receiver during the run: {spans}.")
    return "\n\n".join(lines)


def _spans_per_request(evidence: dict[str, Any]) -> str:
    if "otlp_spans" not in evidence or not evidence.get("requests_served"):  # runs before spans were counted
        return ""
    return f", {evidence['otlp_spans'] / evidence['requests_served']:.2f} spans per request served"


def _optional(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _log_format(result: dict[str, Any], micro: dict[str, Any]) -> str:
    data = micro["log_format"]
    rows = ["| Formatter | records/s | µs/record | ratio to JsonFormatter | line bytes |", "|---|---:|---:|---:|---:|"]
    rows += [f"| {name} | {f['records_per_s']:,} | {f['median_us']:.1f} | {f['ratio_to_json_formatter']:.2f} | "
             f"{f['line_bytes']} |" for name, f in data["formatters"].items()]
    return "\n\n".join(["### Micro (a): log formatting", _caption(result, data["method"]), "\n".join(rows)])


def _request_path(result: dict[str, Any], micro: dict[str, Any]) -> str:
    data = micro["request_path"]
    rows = ["| In-process request | µs/request | over bare µs |", "|---|---:|---:|"]
    rows += [f"| {name} | {c['median_us']:.1f} | {c['over_bare_us']:.1f} |" for name, c in data["cases"].items()]
    return "\n\n".join(["### Micro (b): request ids, access log and metrics", _caption(result, data["method"]),
                        "\n".join(rows)])


def _tracing(result: dict[str, Any], micro: dict[str, Any]) -> str:
    data = micro["tracing"]
    rows = ["| In-process request | µs/request | over bare µs | spans/request |", "|---|---:|---:|---:|"]
    rows += [f"| {name} | {c['median_us']:.1f} | {c['over_bare_us']:.1f} | {c['spans_per_request']:.1f} |"
             for name, c in data["cases"].items()]
    return "\n\n".join(["### Micro (c): tracing", _caption(result, data["method"]), "\n".join(rows)])


def _metrics_scrape(result: dict[str, Any], micro: dict[str, Any]) -> str:
    data = micro["metrics_scrape"]
    rows = ["| Live workers | Restarts | ms per collection | files | counts preserved |", "|---:|---:|---:|---:|---|"]
    rows += [f"| {s['live_workers']} | {s['restarts']} | {s['median_ms']:.1f} | {s['files']} | "
             f"{'yes' if s['counts_preserved'] else 'NO'} |" for s in data["scenarios"]]
    return "\n\n".join(["### Micro (d): /metrics collection", _caption(result, data["method"]), "\n".join(rows)])


def _export_stalls(result: dict[str, Any], micro: dict[str, Any]) -> str:
    data = micro["export_stalls"]
    rows = ["| In-process request (with gunicorn's system calls) | p50 ms | p99 ms | p99.9 ms | max ms | p99 ratio | "
            "req/s | spans/request |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {name} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {c['p999_ms']:.2f} | {c['max_ms']:.2f} | "
             f"{c['p99_ratio_to_bare']:.2f} | {c['requests_per_s']:,.0f} | {c['spans_per_request']:.1f} |"
             for name, c in data["cases"].items()]
    return "\n\n".join(["### Micro (e): requests while spans are exported", _caption(result, data["method"]),
                        "\n".join(rows)])


def _instructions(result: dict[str, Any], micro: dict[str, Any]) -> str:
    data = micro["instructions"]
    parts = ["### Micro (f): instructions per request", _caption(result, data["method"])]
    for endpoint, counted in data["endpoints"].items():
        rows = [f"| In-process request, `{endpoint}` | instructions/request | ratio to bare |", "|---|---:|---:|"]
        rows += [f"| {name} | {c['instructions']:,} | {c['ratio_to_bare']:.2f} |"
                 for name, c in counted["cases"].items()]
        parts.append("\n".join(rows))
        if "tracing_only_throughput_to_otel" in counted:
            parts.append(f"Counted so on `{endpoint}`, tracing-only would serve "
                         f"{counted['tracing_only_throughput_to_otel']:.2f}x the otel peer's requests; the project's "
                         f"tracing part is {counted['tracing_part_to_otel']:.2f}x OpenTelemetry's own (request ids "
                         "included).")
    return "\n\n".join(parts)


_MICRO_SECTIONS = (_log_format, _request_path, _tracing, _metrics_scrape, _export_stalls, _instructions)


def _targets_section(result: dict[str, Any]) -> str:
    rows = ["| Target | Limit | Measured | Met |", "|---|---:|---:|---|"]
    for target in result["targets"]:
        measured = "not measured" if target["measured"] is None else f"{target['measured']:.2f} {target['unit']}"
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        bound = "≥" if target["at_least"] else "≤"
        rows.append(f"| {target['description']} | {bound} {target['limit']:g} {target['unit']} | {measured} | {met} |")
    method = "the tables above, same run"
    return "\n\n".join(["### Targets", _caption(result, method), "\n".join(rows)])
