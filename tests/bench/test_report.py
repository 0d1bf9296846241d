"""The README is rewritten only between the harness's markers."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report
from bench.report import END_MARKER, START_MARKER, replace_between_markers


def test_only_the_text_between_the_markers_changes() -> None:
    document = f"# Title\n\nhand-written method\n\n{START_MARKER}\nold table\n{END_MARKER}\n\n## Next\n"
    rewritten = replace_between_markers(document, "new table\n")
    assert rewritten == f"# Title\n\nhand-written method\n\n{START_MARKER}\nnew table\n{END_MARKER}\n\n## Next\n"
    assert replace_between_markers(rewritten, "new table") == rewritten


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="bench:start"):
        replace_between_markers("# Title\n", "table")


def test_the_instruction_counts_say_how_tracing_compares_with_the_peer_on_each_endpoint() -> None:
    machine = {"cores": 2, "cpu_model": "cpu", "memory_mb": 1, "kernel": "k", "python": "p"}

    def counted(bare: int, otel: int, throughput: float, part: float) -> dict[str, Any]:
        return {"cases": {"bare Flask": {"instructions": bare, "ratio_to_bare": 1.0},
                          "OpenTelemetry FlaskInstrumentor + SDK": {"instructions": otel,
                                                                    "ratio_to_bare": round(bare / otel, 3)}},
                "tracing_only_throughput_to_otel": throughput, "tracing_part_to_otel": part}

    data = {"method": "callgrind", "endpoints": {"trivial": counted(400_000, 1_600_000, 1.9, 0.37),
                                                 "db": counted(850_000, 3_400_000, 1.6, 0.5)}}
    section = report._instructions({"machine": machine}, {"instructions": data})
    assert "| In-process request, `trivial` |" in section and "| In-process request, `db` |" in section
    assert "| bare Flask | 400,000 | 1.00 |" in section and "| bare Flask | 850,000 | 1.00 |" in section
    assert "on `trivial`, tracing-only would serve 1.90x the otel peer's requests" in section
    assert "tracing part is 0.37x" in section
    assert "on `db`, tracing-only would serve 1.60x" in section and "tracing part is 0.50x" in section
    for endpoint in data["endpoints"].values():  # a smoke run counts no otel case
        del endpoint["tracing_only_throughput_to_otel"], endpoint["tracing_part_to_otel"]
    assert "would serve" not in report._instructions({"machine": machine}, {"instructions": data})
