"""Timing loops for the micro-benchmarks: medians of repeats, cases interleaved.

Each repeat times every case once, in a rotated order, so a burst of load on the (shared) machine
touches all cases alike instead of one; the median of the repeats drops the worst bursts. The
garbage collector stays on (requests allocate in production too) but starts every timing empty.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    median_us: float
    samples_us: list[float]

    def as_dict(self) -> dict[str, object]:
        return {"median_us": round(self.median_us, 3), "samples_us": [round(s, 3) for s in self.samples_us]}


def time_interleaved(cases: Mapping[str, Callable[[], object]], iterations: int, repeats: int,
                     finish: Mapping[str, Callable[[], object]] | None = None) -> dict[str, Timing]:
    """Microseconds per call of each case: the median over `repeats` of `iterations` calls.

    `finish[name]`, when given, runs at the end of each of that case's timings and is timed with it:
    work a case leaves behind (spans still queued for export) is charged to that case, not the next.
    """
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in rotated(names, repeat):
            done = (finish or {}).get(name, _nothing)
            samples[name].append(_per_call_us(cases[name], done, iterations))
    return {name: Timing(statistics.median(values), values) for name, values in samples.items()}


def rotated(names: Sequence[str], turn: int) -> list[str]:
    """`names` starting at position `turn` (modulo their number): each gets its turn to go first."""
    start = turn % len(names)
    return [*names[start:], *names[:start]]


def _nothing() -> None:
    return


def _per_call_us(case: Callable[[], object], finish: Callable[[], object], iterations: int) -> float:
    gc.collect()
    started = time.perf_counter()
    for _ in range(iterations):
        case()
    finish()
    return (time.perf_counter() - started) / iterations * 1e6
