"""The AI provider behind an interface, and a simulated provider for the sandbox.

The simulated provider reads a screenplay-like script deterministically: scene headings
(`INT. KITCHEN - NIGHT`) give locations, speaker cues in capitals give characters, and words in
[brackets] give props. Its latency and failure rate are settings (and chaos knobs), so the AI
metrics and the `AICallFailure` alert have something real to show.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ExtractedAsset:
    kind: str  # character, location or prop
    name: str


class AIProviderError(Exception):
    """The provider failed to answer; the caller decides whether to retry."""


class AssetExtractor(Protocol):
    provider: str
    model: str

    def extract(self, script: str, failure_rate: float | None = None) -> list[ExtractedAsset]: ...


_SCENE = re.compile(r"^(?:INT|EXT|INT\./EXT)\.\s+(?P<place>[^-\n]+?)(?:\s+-\s+.*)?$")
_SPEAKER = re.compile(r"^[A-Z][A-Z .'-]{1,40}$")
_PROP = re.compile(r"\[([^\[\]\n]{1,60})\]")
_TRANSITIONS = frozenset({"CUT TO:", "FADE IN:", "FADE OUT.", "THE END"})


def extract_deterministically(script: str) -> list[ExtractedAsset]:
    found: dict[tuple[str, str], None] = {}
    for raw_line in script.splitlines():
        line = raw_line.strip()
        scene = _SCENE.match(line)
        if scene:
            found[("location", scene.group("place").strip().title())] = None
        elif line not in _TRANSITIONS and _SPEAKER.match(line):
            found[("character", line.title())] = None
        for prop in _PROP.findall(line):
            found[("prop", prop.strip().lower())] = None
    return [ExtractedAsset(kind, name) for kind, name in found]


class SimulatedProvider:
    provider = "simulated"

    def __init__(self, model: str, latency_ms: float, failure_rate: float) -> None:
        self.model = model
        self._latency_s = latency_ms / 1000.0
        self._failure_rate = failure_rate

    def extract(self, script: str, failure_rate: float | None = None) -> list[ExtractedAsset]:
        time.sleep(self._latency_s)
        rate = self._failure_rate if failure_rate is None else failure_rate
        if rate > 0 and random.random() < rate:  # noqa: S311 - simulated faults, not crypto
            raise AIProviderError("simulated provider failure")
        return extract_deterministically(script)
