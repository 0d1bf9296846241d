"""What the fault tests need besides the stack: load on loopback, and the figures they measure.

``Load`` runs a few threads that send requests to the app in a loop until stopped (at most
``limit`` seconds), recording each request's start, latency and status, or the error that came
instead of an answer, so that a test can split them by phase (before, during and after a fault).
``Reliability`` collects each fault's figures; the end-to-end session prints them and writes them
as JSON next to visibility.json (``reliability.json``), which the README's Reliability table quotes.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.e2e_clients import session

REQUEST_TIMEOUT = 10


@dataclass(frozen=True)
class Request:
    kind: str  # what the test calls it: "list", "health", "queue", ...
    method: str
    path: str
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    kind: str
    request_id: str
    started: float  # time.time()
    seconds: float
    status: int | None  # None: no answer at all
    error: str = ""  # the exception that came instead of an answer
    body: Any = None  # the JSON body of an error answer (>= 400)


class Load:
    """``threads`` threads sending ``requests`` round-robin, ``pause`` seconds apart, until ``stop``."""

    def __init__(self, app: str, requests_: Sequence[Request], threads: int = 4, pause: float = 0.02,
                 limit: float = 180.0) -> None:
        self.app = app
        self.requests = list(requests_)
        self.pause = pause
        self.limit = limit
        self._sent: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), name=f"fault-load-{i}", daemon=True)
                         for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> list[Sent]:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout=REQUEST_TIMEOUT + 5)
        return self.sent()

    def sent(self) -> list[Sent]:
        with self._lock:
            return sorted(self._sent, key=lambda s: s.started)

    def _run(self, offset: int) -> None:
        http = session()
        deadline = time.monotonic() + self.limit
        turn = offset
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent = self._send(http, self.requests[turn % len(self.requests)])
            turn += 1
            with self._lock:
                self._sent.append(sent)
            self._stop.wait(self.pause)

    def _send(self, http: requests.Session, request: Request) -> Sent:
        request_id = f"e2e-fault-{request.kind}-{uuid.uuid4().hex}"
        started, clock = time.time(), time.perf_counter()
        try:
            response = http.request(request.method, f"{self.app}{request.path}", json=request.json,
                                    headers={"X-Request-ID": request_id, **request.headers},
                                    timeout=REQUEST_TIMEOUT)
        except requests.RequestException as error:
            return Sent(request.kind, request_id, started, time.perf_counter() - clock, None, type(error).__name__)
        seconds = time.perf_counter() - clock
        body = _json(response) if response.status_code >= 400 else None
        return Sent(request.kind, request_id, started, seconds, response.status_code, body=body)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:300]


def between(sent: Iterable[Sent], start: float, end: float) -> list[Sent]:
    """What was sent from ``start`` to ``end`` (``time.time()`` values)."""
    return [s for s in sent if start <= s.started < end]


def by_status(sent: Iterable[Sent]) -> dict[str, int]:
    """Counts by status; requests without an answer count under their error's name."""
    counts: dict[str, int] = {}
    for s in sent:
        key = str(s.status) if s.status is not None else s.error
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def latency_ms(sent: Sequence[Sent]) -> dict[str, float | None]:
    """Median and 95th percentile of the answered requests' latency, in ms (None: too few answers)."""
    seconds = sorted(s.seconds for s in sent if s.status is not None)
    if len(seconds) < 2:
        return {"p50": None, "p95": None}
    return {"p50": round(statistics.median(seconds) * 1000, 2),
            "p95": round(statistics.quantiles(seconds, n=20)[-1] * 1000, 2)}


@dataclass
class FaultFigures:
    fault: str
    provider: str
    figures: dict[str, Any]
    seconds: float  # the test's duration, fault and recovery included


class Reliability:
    def __init__(self) -> None:
        self.faults: list[FaultFigures] = []

    def record(self, fault: str, provider: str, seconds: float, **figures: Any) -> None:
        self.faults.append(FaultFigures(fault, provider, figures, round(seconds, 1)))

    def lines(self) -> list[str]:
        return [f"{f.fault} ({f.provider}, {f.seconds:.0f}s): "
                + ", ".join(f"{name}={value}" for name, value in f.figures.items()) for f in self.faults]

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        machine = {"machine": platform.machine(), "cpus": _cpus(), "python": platform.python_version()}
        document = {"written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **machine,
                    "faults": [asdict(f) for f in self.faults]}
        path.write_text(json.dumps(document, indent=2) + "\n")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
