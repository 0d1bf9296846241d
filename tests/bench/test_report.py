"""The README is rewritten only between the harness's markers."""

from __future__ import annotations

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


def test_the_instruction_counts_say_how_tracing_compares_with_the_peer() -> None:
    machine = {"cores": 2, "cpu_model": "cpu", "memory_mb": 1, "kernel": "k", "python": "p"}
    counted = {"method": "callgrind", "cases": {"bare Flask": {"instructions": 400_000, "ratio_to_bare": 1.0},
                                                "OpenTelemetry FlaskInstrumentor + SDK": {"instructions": 1_600_000,
                                                                                          "ratio_to_bare": 0.25}},
               "tracing_only_throughput_to_otel": 1.9, "tracing_part_to_otel": 0.37}
    section = report._instructions({"machine": machine}, {"instructions": counted})
    assert "| bare Flask | 400,000 | 1.00 |" in section
    assert "tracing-only would serve 1.90x the otel peer's requests" in section
    assert "tracing part is 0.37x" in section
    smoke = {**counted}
    del smoke["tracing_only_throughput_to_otel"], smoke["tracing_part_to_otel"]
    assert "would serve" not in report._instructions({"machine": machine}, {"instructions": smoke})
