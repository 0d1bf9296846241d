"""The README is rewritten only between the harness's markers."""

from __future__ import annotations

import pytest

from bench.report import END_MARKER, START_MARKER, replace_between_markers


def test_only_the_text_between_the_markers_changes() -> None:
    document = f"# Title\n\nhand-written method\n\n{START_MARKER}\nold table\n{END_MARKER}\n\n## Next\n"
    rewritten = replace_between_markers(document, "new table\n")
    assert rewritten == f"# Title\n\nhand-written method\n\n{START_MARKER}\nnew table\n{END_MARKER}\n\n## Next\n"
    assert replace_between_markers(rewritten, "new table") == rewritten


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="bench:start"):
        replace_between_markers("# Title\n", "table")
