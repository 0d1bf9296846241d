"""The outbox's thread (started by the first alert, ended when empty, never inherited by a fork)
and its spool on disk."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import replace

from observability.alert_outbox import AlertOutbox, AlertSpool
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


# --- the spool: what a process that exits or is killed leaves for the next one -------------------


def test_an_alert_is_on_disk_before_its_first_attempt_and_gone_once_handed_over(tmp_path) -> None:
    spool = AlertSpool(str(tmp_path / "spool"))
    seen_on_disk: list[int] = []

    def send(_alert: Alert, _channels: tuple[str, ...]) -> tuple[str, ...]:
        seen_on_disk.append(len(spool.load()))
        return ()

    outbox = AlertOutbox(send, background=False, spool=spool)
    outbox.hold(ALERT, (WEBHOOK, EMAIL))
    assert outbox.flush() == 0
    assert seen_on_disk == [1] and spool.load() == []


def test_a_later_process_recovers_what_an_earlier_one_could_not_hand_over(tmp_path) -> None:
    directory = str(tmp_path / "spool")
    earlier = AlertOutbox(lambda _alert, channels: channels, background=False, spool=AlertSpool(directory))
    earlier.hold(ALERT, (WEBHOOK, EMAIL))
    earlier.flush()  # Redis or the broker down: still held, and the process now ends
    sent: list[tuple[Alert, tuple[str, ...]]] = []
    later = AlertOutbox(lambda alert, channels: (sent.append((alert, channels)), ())[1], background=False,
                        spool=AlertSpool(directory))
    assert later.recover((WEBHOOK, EMAIL)) == 1
    assert later.flush() == 0
    assert sent == [(ALERT, (WEBHOOK, EMAIL))]  # the same alert id: its claims decide, nothing sends twice
    assert AlertSpool(directory).load() == []


def test_a_recovered_alert_goes_only_to_the_channels_still_configured(tmp_path) -> None:
    spool = AlertSpool(str(tmp_path))
    spool.save(ALERT, (WEBHOOK, EMAIL))
    spool.save(replace(ALERT, fingerprint="mail-only"), (EMAIL,))
    sent: list[tuple[str, tuple[str, ...]]] = []
    outbox = AlertOutbox(lambda alert, channels: (sent.append((alert.fingerprint, channels)), ())[1],
                         background=False, spool=spool)
    assert outbox.recover((WEBHOOK,)) == 1  # e-mail is no longer configured
    outbox.flush()
    assert sent == [(ALERT.fingerprint, (WEBHOOK,))]
    assert spool.load() == []  # the e-mail-only alert is not kept for a channel that is gone


def test_the_spool_is_bounded_private_and_never_named_after_error_text(tmp_path) -> None:
    spool = AlertSpool(str(tmp_path / "spool"), capacity=2)
    alerts = [replace(ALERT, fingerprint=name) for name in ("../../etc/passwd", "b", "c")]
    assert [spool.save(alert, (WEBHOOK,)) for alert in alerts] == [True, True, False]
    assert spool.save(alerts[0], (EMAIL,))  # rewriting a held one is not a new entry
    files = sorted((tmp_path / "spool").iterdir())
    assert len(files) == 2 and all(path.suffix == ".json" and "passwd" not in path.name for path in files)
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)


def test_an_unreadable_spool_file_is_removed_and_the_others_still_recovered(tmp_path, caplog) -> None:
    spool = AlertSpool(str(tmp_path))
    spool.save(ALERT, (WEBHOOK,))
    (tmp_path / f"{0:032d}.json").write_text('{"alert": {"fingerprint": ')
    with caplog.at_level(logging.WARNING, "observability.notifications"):
        assert spool.load() == [(ALERT, (WEBHOOK,))]
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert [r.event for r in caplog.records] == ["notification_spool_error"]
