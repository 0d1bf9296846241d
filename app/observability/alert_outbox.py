"""Alerts of a process on their way to the broker, held while Redis or the broker is down."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

from observability.alert_transports import Alert

_logger = logging.getLogger("observability.notifications")
OUTBOX_CAPACITY = 100  # fingerprints waiting per process; more are dropped (counted, logged)
OUTBOX_RETRY_SECONDS = 2.0


class AlertOutbox:
    """Alerts of this process on their way to the broker, one per fingerprint.

    `hold` keeps an alert with the channels still to do (at most `capacity` fingerprints: more are
    refused, and the caller counts them) and wakes a daemon thread that calls `send(alert, channels)`
    at once, then every `retry_seconds` until it returns no channel left. The thread is started by
    the first `hold` in the process that holds (never at import or set-up, so never in a server's
    parent before fork) and ends when nothing is left. A forked child starts with fresh locks and no
    thread: a lock copied while another thread held it would never be released there. With
    `background` False nothing is started and the caller flushes (tests).
    """

    def __init__(self, send: Callable[[Alert, tuple[str, ...]], tuple[str, ...]],
                 capacity: int = OUTBOX_CAPACITY, retry_seconds: float = OUTBOX_RETRY_SECONDS,
                 background: bool = True) -> None:
        self._send = send
        self.capacity = capacity
        self.background = background
        self._retry_seconds = retry_seconds
        self._pending: dict[str, tuple[Alert, tuple[str, ...], float]] = {}
        self._after_fork()
        reset = weakref.WeakMethod(self._after_fork)  # a fork hook must not keep the outbox alive

        def after_fork_in_child() -> None:
            if (method := reset()) is not None:
                method()

        os.register_at_fork(after_in_child=after_fork_in_child)

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

    def flush(self) -> int:
        """One attempt at every held alert; how many are still held."""
        with self._flushing:
            with self._lock:
                held = list(self._pending.items())
            for fingerprint, (alert, channels, since) in held:
                left = self._send(alert, channels)
                with self._lock:
                    if left:
                        self._pending[fingerprint] = (alert, left, since)
                        continue
                    self._pending.pop(fingerprint, None)
                waited = time.monotonic() - since
                if waited >= self._retry_seconds:  # held back by an outage, not just handed over
                    _logger.info("held alert notification released", extra={  # duration_ms: how long it waited
                        "event": "notification_released", "fingerprint": fingerprint,
                        "duration_ms": round(waited * 1000, 1)})
        return len(self._pending)

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
