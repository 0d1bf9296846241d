"""Alerts of a process on their way to the broker, held while Redis or the broker is down, and
spooled to disk so that a process that exits or is killed meanwhile loses none of them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from observability import process
from observability.alert_transports import Alert

_logger = logging.getLogger("observability.notifications")
OUTBOX_CAPACITY = 100  # fingerprints waiting per process; more are dropped (counted, logged)
OUTBOX_RETRY_SECONDS = 2.0


class AlertSpool:
    """One file per held fingerprint in a directory the service's processes share.

    A file is written before the first attempt to queue its alert and removed once every channel
    took it; a process that starts finds what an earlier one left (`load`). Several processes may
    load the same file: the claims in Redis still let each channel send once.
    """

    def __init__(self, directory: str, capacity: int = OUTBOX_CAPACITY) -> None:
        self.directory = Path(directory)
        self.capacity = capacity

    def _path(self, fingerprint: str) -> Path:
        # A digest, not the fingerprint itself: a file name must never come from error text.
        return self.directory / f"{hashlib.sha256(fingerprint.encode()).hexdigest()[:32]}.json"

    def save(self, alert: Alert, channels: tuple[str, ...]) -> bool:
        """Writes (or rewrites) the alert's file; False when the spool is full or not writable."""
        path = self._path(alert.fingerprint)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists() and sum(1 for _ in self.directory.glob("*.json")) >= self.capacity:
                return False
            temporary = path.with_suffix(f".{os.getpid()}.tmp")  # not *.json: never loaded half-written
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                json.dump({"alert": asdict(alert), "channels": list(channels)}, file)
            os.replace(temporary, path)
        except OSError as error:
            _logger.warning("alert spool not writable", extra={
                "event": "notification_spool_error", "error_type": type(error).__name__})
            return False
        return True

    def remove(self, fingerprint: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(fingerprint).unlink()

    def load(self) -> list[tuple[Alert, tuple[str, ...]]]:
        """The alerts earlier processes left; a file that cannot be read is logged and removed."""
        found: list[tuple[Alert, tuple[str, ...]]] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                entry = json.loads(path.read_text())
                found.append((Alert.from_task(entry["alert"]), tuple(entry["channels"])))
            except FileNotFoundError:
                continue  # another process delivered it meanwhile
            except (OSError, ValueError, TypeError, KeyError) as error:
                _logger.warning("unreadable alert spool file removed", extra={
                    "event": "notification_spool_error", "error_type": type(error).__name__})
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return found


class AlertOutbox:
    """Alerts of this process on their way to the broker, one per fingerprint.

    `hold` keeps an alert with the channels still to do (at most `capacity` fingerprints: more are
    refused, and the caller counts them) and wakes a daemon thread that calls `send(alert, channels)`
    at once, then every `retry_seconds` until it returns no channel left. The thread is started by
    the first `hold` in the process that holds (never at import or set-up, so never in a server's
    parent before fork) and ends when nothing is left. A forked child starts with fresh locks and no
    thread: a lock copied while another thread held it would never be released there. With
    `background` False nothing is started and the caller flushes (tests). With a `spool`, every held
    alert is on disk until it is handed over, and `recover` takes up what an earlier process left.
    """

    def __init__(self, send: Callable[[Alert, tuple[str, ...]], tuple[str, ...]],
                 capacity: int = OUTBOX_CAPACITY, retry_seconds: float = OUTBOX_RETRY_SECONDS,
                 background: bool = True, spool: AlertSpool | None = None) -> None:
        self._send = send
        self._spool = spool
        self._spooled: set[str] = set()  # fingerprints whose file is written
        self.capacity = capacity
        self.background = background
        self._retry_seconds = retry_seconds
        self._pending: dict[str, tuple[Alert, tuple[str, ...], float]] = {}
        self._after_fork()
        process.in_each_forked_child(self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time: the thread's, or a caller's
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def holds(self, fingerprint: str) -> bool:
        return fingerprint in self._pending

    def hold(self, alert: Alert, channels: tuple[str, ...]) -> bool:
        """Keeps `alert` for `channels` until they take it; False when the outbox is full."""
        with self._lock:
            if alert.fingerprint not in self._pending and len(self._pending) >= self.capacity:
                return False
            self._pending[alert.fingerprint] = (alert, channels, time.monotonic())
            self._wake.set()
            if self.background and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="alert-outbox", daemon=True)
                self._thread.start()
        return True

    def recover(self, channels: tuple[str, ...]) -> int:
        """Holds the alerts an earlier process spooled and did not hand over, for those of their
        channels that are still configured (`channels`); how many."""
        if self._spool is None:
            return 0
        recovered = 0
        for alert, spooled_for in self._spool.load():
            wanted = tuple(channel for channel in spooled_for if channel in channels)
            if not wanted:  # no channel it was meant for is configured any more
                self._spool.remove(alert.fingerprint)
                continue
            self._spooled.add(alert.fingerprint)  # its file exists already
            if self.holds(alert.fingerprint) or not self.hold(alert, wanted):
                continue
            recovered += 1
        if recovered:
            _logger.info("spooled alert notifications recovered", extra={
                "event": "notification_recovered", "alerts_recovered": recovered})
        return recovered

    def flush(self) -> int:
        """One attempt at every held alert; how many are still held."""
        with self._flushing:
            with self._lock:
                held = list(self._pending.items())
            for fingerprint, (alert, channels, since) in held:
                self._write_to_spool(alert, channels)
                left = self._send(alert, channels)
                with self._lock:
                    if left:
                        self._pending[fingerprint] = (alert, left, since)
                        continue
                    self._pending.pop(fingerprint, None)
                self._remove_from_spool(fingerprint)
                waited = time.monotonic() - since
                if waited >= self._retry_seconds:  # held back by an outage, not just handed over
                    _logger.info("held alert notification released", extra={  # duration_ms: how long it waited
                        "event": "notification_released", "fingerprint": fingerprint,
                        "duration_ms": round(waited * 1000, 1)})
        return len(self._pending)

    def _write_to_spool(self, alert: Alert, channels: tuple[str, ...]) -> None:
        if self._spool is not None and alert.fingerprint not in self._spooled and self._spool.save(alert, channels):
            self._spooled.add(alert.fingerprint)

    def _remove_from_spool(self, fingerprint: str) -> None:
        if self._spool is not None and fingerprint in self._spooled:
            self._spooled.discard(fingerprint)
            self._spool.remove(fingerprint)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._retry_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a bug must not end the retries silently
                _logger.exception("alert outbox flush failed", extra={"event": "notification_outbox_error"})
            with self._lock:  # nothing left: end, and let the next hold start a thread again
                if not self._pending:
                    self._thread = None
                    return
