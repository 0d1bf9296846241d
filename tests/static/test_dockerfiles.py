"""Every Dockerfile of the repository parses as the engine reads it: a line is either a new instruction,
a comment, or the continuation of one that ended in a backslash. The engine's parser reports a
broken continuation only when an image is built, which needs an engine; this catches it without one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT / name for name in subprocess.run(
    ["git", "ls-files", "*Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split())
INSTRUCTION = re.compile(r"(?i)(FROM|RUN|CMD|LABEL|EXPOSE|ENV|ADD|COPY|ENTRYPOINT|VOLUME|USER|WORKDIR|ARG|ONBUILD|"
                         r"STOPSIGNAL|HEALTHCHECK|SHELL)\b")


def test_there_are_dockerfiles() -> None:
    assert ROOT / "app" / "Dockerfile" in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_line_is_an_instruction_a_comment_or_a_continuation(dockerfile: Path) -> None:
    continued = False
    for number, line in enumerate(dockerfile.read_text().splitlines(), 1):
        stripped = line.strip()
        if not continued and stripped and not stripped.startswith("#"):
            assert INSTRUCTION.match(stripped), f"{dockerfile.name}:{number}: not an instruction: {stripped[:60]}"
        if stripped and not stripped.startswith("#"):
            continued = stripped.endswith("\\")
