"""Time to visibility: how long after the app answered a signal can be seen where people look for it.

Each measurement starts at a moment the test took right after a response (or after the last of a
burst) and ends when a poll first sees the signal; a poll every ``POLL_SECONDS`` at most, so a figure
can be late by that much plus one query's duration, never early. The end-to-end session prints the
table at its end and writes it as JSON.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

POLL_SECONDS = 0.1
_T = TypeVar("_T")
# Not there yet, or the server is still busy: poll again. Anything else is a bug in the test.
RETRYABLE = (requests.RequestException, KeyError, IndexError, ValueError, LookupError)


@dataclass(frozen=True)
class Measurement:
    signal: str
    seconds: float
    since: str  # what the clock started at
    until: str  # what was seen
    test: str


class Visibility:
    def __init__(self) -> None:
        self.measurements: list[Measurement] = []
        self.mode = ""
        self.start_seconds: float | None = None  # how long the tests took to start the stack

    def record(self, signal: str, seconds: float, since: str, until: str, test: str = "") -> None:
        self.measurements.append(Measurement(signal, round(seconds, 3), since, until, test))

    def table(self) -> str:
        rows = [("signal", "seconds", "from", "until")]
        rows += [(m.signal, f"{m.seconds:.2f}", m.since, m.until) for m in self.measurements]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(widths[i]) if i != 1 else cell.rjust(widths[i]) for i, cell in enumerate(row))
                 for row in rows]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "stack_start_seconds": self.start_seconds, "poll_seconds": POLL_SECONDS,
                "written_at": time.time(),
                "measurements": [asdict(m) for m in self.measurements]}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def wait_for(what: str, probe: Callable[[], _T], timeout: float, interval: float = POLL_SECONDS,
             diagnose: Callable[[], str] | None = None) -> _T:
    """Call ``probe`` until it returns something truthy and return that; fail with ``what`` and the
    last result or error after ``timeout`` seconds (and what ``diagnose`` returns, if given)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except RETRYABLE as exc:
            last = exc
        if time.monotonic() > deadline:
            details = f"\n{diagnose()}" if diagnose is not None else ""
            pytest.fail(f"{what}: not within {timeout:.0f}s (last: {last!r:.1500}){details}", pytrace=False)
        time.sleep(interval)


def wait_visible(visibility: Visibility, signal: str, since: float, since_what: str, until_what: str,
                 probe: Callable[[], _T], timeout: float, test: str = "", interval: float = POLL_SECONDS) -> _T:
    """``wait_for`` that records the time from ``since`` (a ``time.time()``) to the first success."""
    found = wait_for(f"{signal} ({until_what})", probe, timeout, interval)
    visibility.record(signal, time.time() - since, since_what, until_what, test)
    return found


class Watch:
    """Polls several signals at once in a background thread, from the moment it starts: each
    figure is measured on its own, not after the test finished waiting for another one.

    ``add`` a probe per signal, ``start``, then ``wait(signal, timeout)`` for what the probe found; the
    measurement (seconds from ``since``) is recorded when first seen. A probe that raises one of
    ``RETRYABLE`` counts as not seen yet.
    """

    def __init__(self, visibility: Visibility, since: float, since_what: str, test: str,
                 interval: float = POLL_SECONDS, limit: float = 3600.0) -> None:
        self.visibility = visibility
        self.since = since
        self.since_what = since_what
        self.test = test
        self.interval = interval
        self.limit = limit
        self._probes: dict[str, tuple[str, Callable[[], Any]]] = {}
        self._seen: dict[str, Any] = {}
        self._last: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-visibility-watch", daemon=True)

    def add(self, signal: str, until: str, probe: Callable[[], Any]) -> Watch:
        self._probes[signal] = (until, probe)
        return self

    def start(self) -> Watch:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                pending = [signal for signal in self._probes if signal not in self._seen]
            if not pending:
                return
            for signal in pending:
                until, probe = self._probes[signal]
                try:
                    found = probe()
                except RETRYABLE as exc:
                    found = None
                    self._last[signal] = exc
                else:
                    self._last[signal] = found
                if found:
                    seconds = time.time() - self.since
                    with self._lock:
                        self._seen[signal] = found
                    self.visibility.record(signal, seconds, self.since_what, until, self.test)
            self._stop.wait(self.interval)

    def wait(self, signal: str, timeout: float, diagnose: Callable[[], str] | None = None) -> Any:
        """What the probe of ``signal`` found; fails after ``timeout`` more seconds (with what
        ``diagnose`` returns, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if signal in self._seen:
                    return self._seen[signal]
            if not self._thread.is_alive() or time.monotonic() > deadline:
                until = self._probes[signal][0]
                details = f"\n{diagnose()}" if diagnose is not None else ""
                pytest.fail(f"{signal} ({until}): not within {timeout:.0f}s "
                            f"(last: {self._last.get(signal)!r:.1500}){details}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
