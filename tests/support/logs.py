"""Reading what the instrumentation wrote: one JSON object per line, or the test fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def parse_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.split("\n") if line]


class LogLines:
    """The JSON lines this process wrote to file descriptor 1 since the last read."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self._capfd = capfd

    def read(self) -> list[dict[str, Any]]:
        return parse_lines(self._capfd.readouterr().out)

    def events(self, event: str) -> list[dict[str, Any]]:
        return [record for record in self.read() if record.get("event") == event]


def read_log_file(path: Path) -> list[dict[str, Any]]:
    return parse_lines(path.read_text()) if path.exists() else []
