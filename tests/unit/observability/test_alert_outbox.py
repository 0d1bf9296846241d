"""The outbox's thread: started by the first alert, ended when empty, never inherited by a fork."""

from __future__ import annotations

import os
import threading
import time

from observability.alert_outbox import AlertOutbox
from observability.alert_transports import EMAIL, WEBHOOK, Alert
from tests.support.alerts import ALERT


def test_the_outbox_thread_starts_with_the_first_alert_and_ends_when_empty() -> None:
    reachable = threading.Event()
    sent: list[str] = []

    def send(alert: Alert, channels: tuple[str, ...]) -> tuple[str, ...]:
        if not reachable.is_set():
            return channels
        sent.append(alert.fingerprint)
        return ()

    outbox = AlertOutbox(send, retry_seconds=0.02)
    assert outbox._thread is None  # nothing started before anything is held
    assert outbox.hold(ALERT, (WEBHOOK, EMAIL))
    thread = outbox._thread
    assert thread is not None and thread.is_alive()
    time.sleep(0.1)
    assert sent == [] and len(outbox) == 1
    reachable.set()
    thread.join(timeout=5)
    assert sent == ["f00dfeed"] and len(outbox) == 0 and outbox._thread is None


def test_the_outbox_thread_hands_an_alert_over_at_once() -> None:
    sent = threading.Event()
    outbox = AlertOutbox(lambda _alert, _channels: (sent.set(), ())[1], retry_seconds=60)
    outbox.hold(ALERT, (WEBHOOK,))
    assert sent.wait(5)  # not after the retry interval


def test_a_forked_child_gets_a_fresh_lock_and_no_thread() -> None:
    outbox = AlertOutbox(lambda _alert, channels: channels, retry_seconds=60)
    outbox.hold(ALERT, (WEBHOOK,))
    with outbox._lock:  # held by this thread at fork time: the child's copy would never be released
        pid = os.fork()
        if pid == 0:  # the child
            fresh = outbox._thread is None and outbox._lock.acquire(timeout=1) and outbox.holds("f00dfeed")
            os._exit(0 if fresh else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# --- the worker's side: one delivery per alert and channel ---------------------------------------
