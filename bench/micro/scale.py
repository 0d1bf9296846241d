"""How long the micro-benchmarks run: `full` for figures, `smoke` to check they work at all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    log_records: int  # records per timing of a log formatter
    wsgi_calls: int  # requests per timing of an in-process WSGI app
    repeats: int  # timings per case; the median is reported
    scrape_repeats: int  # /metrics collections per scenario
    live_workers: tuple[int, ...]
    restarts: tuple[int, ...]
    stall_requests: int  # timed requests per case and round of micro (e)
    stall_rounds: int
    counted_requests: tuple[int, int]  # requests of micro (f)'s two counted runs per case


SCALES = {
    "full": Scale("full", log_records=20_000, wsgi_calls=3_000, repeats=7, scrape_repeats=11,
                  live_workers=(1, 2, 4), restarts=(0, 100), stall_requests=10_000, stall_rounds=5,
                  counted_requests=(200, 1_000)),
    "smoke": Scale("smoke", log_records=200, wsgi_calls=50, repeats=2, scrape_repeats=2,
                   live_workers=(1, 2), restarts=(0, 2), stall_requests=200, stall_rounds=1,
                   counted_requests=(20, 60)),
}
