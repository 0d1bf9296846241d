"""Errors to alerts, in either provider: one storm of identical unhandled exceptions, made by the
chaos knob, feeds both alert paths.

* The app's own path: the first ChaosError is notified through Celery to the webhook sink and to
  Mailpit ("[CRITICAL] ChaosError in ..."); every later one within the dedupe window is not.
* Prometheus's path: the error ratio fires the real HighErrorRate rule (only its `for:` shortened,
  by SANDBOX_ALERT_FOR in the native sandbox), Alertmanager delivers it to the sink and to Mailpit;
  with the knob off and enough successful requests to bring the 5-minute ratio under the warning
  twin's 1 %, it resolves and the resolution is delivered.

Waits follow the running configuration (the rule's `for`, scrape and evaluation intervals,
Alertmanager's group_wait and group_interval), so the same test is right for the compose stack's
production timings and the native sandbox's shortcuts.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.e2e_app import forget_notified_errors, hammer, new_request_id, set_chaos
from tests.support.e2e_clients import (
    Alertmanager,
    LogFile,
    Mailpit,
    Prometheus,
    WebhookSink,
    notification_trail,
    scraped_after,
    session,
)
from tests.support.e2e_stack import Provider
from tests.support.visibility import Visibility, Watch, wait_for

ALERT = "HighErrorRate"
APP_TITLE = "[CRITICAL] ChaosError in"
FIRING = f"{ALERT} (critical)"
STORM = 10  # identical ChaosErrors in one burst, the first included
GUARD_REQUESTS = 40  # successes, so that the rule's minimum traffic (0.1 request/s over 5 m) is there
TRICKLE_SECONDS = 10  # one more error (and three successes) this often until the alert fires, when
LONG_FOR_SECONDS = 120  # the rule's `for` is longer than this (the burst alone would leave the window)
TARGET_RATIO = 0.004  # dilution target: under the warning twin's 1 %, with room for extrapolation
MAX_DILUTION = 20_000  # requests per round
ERROR_PATH = "/api/episodes"  # every /api request fails while error_rate is 1
HEALTH_PATH = "/healthz"  # counted by http_requests_total, untouched by the chaos knob, not traced or logged
NOTIFICATION_TIMEOUT = 90  # the app's path: a Celery task per channel


@pytest.fixture(scope="module")
def alertmanager(endpoint: Callable[[str], str]) -> Alertmanager:
    return Alertmanager(endpoint("alertmanager"))


@dataclass(frozen=True)
class Timing:
    rule_for: float
    scrape: float
    evaluation: float
    group_wait: float
    group_interval: float

    @property
    def fire(self) -> float:
        """From the first error to the alert firing in Prometheus, at most (plus room)."""
        return self.rule_for + 3 * self.scrape + 3 * self.evaluation + 60

    @property
    def deliver(self) -> float:
        return self.group_wait + self.evaluation + 60

    @property
    def resolve(self) -> float:
        return 3 * self.scrape + 3 * self.evaluation + 60

    @property
    def deliver_resolved(self) -> float:
        return self.group_interval + 2 * self.evaluation + 60


@pytest.fixture(scope="module")
def timing(prometheus: Prometheus, alertmanager: Alertmanager) -> Timing:
    rules = prometheus.alert_rules(ALERT)
    critical = [rule for rule in rules if rule["labels"].get("severity") == "critical"]
    assert len(critical) == 1, f"one critical {ALERT} rule expected in the running Prometheus: {rules}"
    scrape, evaluation = prometheus.intervals()
    group_wait, group_interval = alertmanager.group_timing()
    return Timing(float(critical[0]["duration"]), scrape, evaluation, group_wait, group_interval)


def _scrape_after(prometheus: Prometheus, moment: float, jobs: tuple[str, ...] = ("app",)) -> None:
    scrape, _ = prometheus.intervals()
    wait_for(f"a scrape of {'/'.join(jobs)} after {moment:.1f}", lambda: scraped_after(prometheus, moment, jobs),
             timeout=3 * scrape + 15, interval=0.2)


def dilute(provider: Provider, prometheus: Prometheus, target: float = TARGET_RATIO,
           rounds: int = 4) -> tuple[int, float]:
    """Successful requests until Prometheus's 5-minute error ratio is below ``target``: how many, and
    when the last one was answered (a ``time.time()``)."""
    sent, last_answered = 0, time.time()
    for _ in range(rounds):
        _scrape_after(prometheus, time.time())
        errors = prometheus.value('sum(increase(http_requests_total{status=~"5.."}[5m]))') or 0.0
        total = prometheus.value("sum(increase(http_requests_total[5m]))") or 0.0
        needed = math.ceil(errors / target - total)
        if needed <= 0:
            return sent, last_answered
        statuses = hammer(f"{provider.url('app')}{HEALTH_PATH}", min(needed, MAX_DILUTION))
        last_answered = time.time()
        assert set(statuses) == {200}, statuses
        sent += sum(statuses.values())
    pytest.fail(f"the 5-minute error ratio is still above {target} after {sent} successful requests", pytrace=False)


class Trickle(threading.Thread):
    """Keeps the error ratio up (compose's `for: 5m` outlasts one burst in a 5-minute window)."""

    def __init__(self, app: str) -> None:
        super().__init__(name="e2e-error-trickle", daemon=True)
        self.app = app
        self.stopped = threading.Event()

    def run(self) -> None:
        http = session()
        while not self.stopped.wait(TRICKLE_SECONDS):
            with contextlib.suppress(Exception):  # best effort: the assertions are elsewhere
                http.get(f"{self.app}{ERROR_PATH}", timeout=10)
                for _ in range(3):
                    http.get(f"{self.app}{HEALTH_PATH}", timeout=10)

    def stop(self) -> None:
        self.stopped.set()
        if self.ident is not None:  # started
            self.join(timeout=30)


@dataclass
class Storm:
    first_answered: float  # the first error's response: the clock of every alert signal starts here
    request_ids: list[str]
    counters_before: dict[str, float]
    watch: Watch  # the app's notifications and the alert, watched from the first error on
    trickle: Trickle | None
    chaos_off: Callable[[], None]
    over: list[bool] = field(default_factory=list)

    def end(self) -> None:
        """Knob off, no more errors (idempotent)."""
        if not self.over:
            self.over.append(True)
            if self.trickle is not None:
                self.trickle.stop()
            self.chaos_off()


NOTIFIER_COUNTERS = {
    "queued_webhook": 'sum(alert_notifications_total{job="app", channel="webhook", outcome="queued"})',
    "queued_email": 'sum(alert_notifications_total{job="app", channel="email", outcome="queued"})',
    "deduplicated": 'sum(alert_notifications_total{job="app", channel="all", outcome="deduplicated"})',
    "sent_webhook": 'sum(alert_notifications_total{job="worker", channel="webhook", outcome="sent"})',
    "sent_email": 'sum(alert_notifications_total{job="worker", channel="email", outcome="sent"})',
}


def _counters(prometheus: Prometheus) -> dict[str, float]:
    return {name: prometheus.value(expr) or 0.0 for name, expr in NOTIFIER_COUNTERS.items()}


def _no_alert_left(provider: Provider, prometheus: Prometheus, timing: Timing) -> None:
    """An alert still active from an earlier run would hide this one's notifications."""
    if not prometheus.alerts(ALERT):
        return
    dilute(provider, prometheus)
    wait_for(f"{ALERT} of an earlier run resolved", lambda: not prometheus.alerts(ALERT), timing.resolve)


def _titled(titles: list[str], *, starts: str, contains: str = "") -> list[str]:
    return [title for title in titles if title.startswith(starts) and contains in title]


def _critical(prometheus: Prometheus, state: str) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts(ALERT) if a["labels"].get("severity") == "critical" and a["state"] == state]


def _watch_the_storm(visibility: Visibility, since: float, prometheus: Prometheus, sink: WebhookSink,
                     mailpit: Mailpit, timing: Timing) -> Watch:
    watch = Watch(visibility, since, "first ChaosError response", f"storm; {ALERT} for: {timing.rule_for:g}s")
    watch.add("app notification at the webhook sink", f"'{APP_TITLE} ...' message",
              lambda: _titled(sink.titles(), starts=APP_TITLE))
    watch.add("app notification in Mailpit", f"'{APP_TITLE} ...' mail",
              lambda: _titled(mailpit.subjects(), starts=APP_TITLE))
    watch.add("alert firing in Prometheus", f"{FIRING} state firing", lambda: _critical(prometheus, "firing"))
    watch.add("alert at the webhook sink", f"[FIRING:1] {FIRING}",
              lambda: _titled(sink.titles(), starts="[FIRING", contains=FIRING))
    watch.add("alert mail in Mailpit", f"[FIRING:1] {FIRING}",
              lambda: _titled(mailpit.subjects(), starts="[FIRING", contains=FIRING))
    return watch


@pytest.fixture(scope="module")
def storm(provider: Provider, endpoint: Callable[[str], str], prometheus: Prometheus, timing: Timing,
          sink: WebhookSink, mailpit: Mailpit, visibility: Visibility, no_background_traffic: None) -> Iterator[Storm]:
    endpoint("redis")
    app = provider.url("app")
    _no_alert_left(provider, prometheus, timing)
    forget_notified_errors(provider)
    sink.clear()
    mailpit.clear()
    _scrape_after(prometheus, time.time(), ("app", "worker"))
    counters_before = _counters(prometheus)

    http = session()
    set_chaos(provider, error_rate=1.0)
    # A burst stays in the 5-minute window long enough for a short `for`; compose's `for: 5m` needs
    # errors (and traffic) to go on until the alert fires.
    trickle = Trickle(app) if timing.rule_for > LONG_FOR_SECONDS else None
    first_id = new_request_id("storm")
    response = http.get(f"{app}{ERROR_PATH}", headers={"X-Request-ID": first_id}, timeout=10)
    first_answered = time.time()
    watch = _watch_the_storm(visibility, first_answered, prometheus, sink, mailpit, timing).start()
    state = Storm(first_answered, [first_id], counters_before, watch, trickle, lambda: set_chaos(provider))
    try:
        assert response.status_code == 500, response.text
        assert response.json()["request_id"] == first_id
        # rate() counts a series' increase from its second sample on: the first error and the first
        # successful request create the series the rule reads, and the rest waits for their scrape.
        assert http.get(f"{app}{HEALTH_PATH}", timeout=10).status_code == 200
        _scrape_after(prometheus, time.time())

        guard = hammer(f"{app}{HEALTH_PATH}", GUARD_REQUESTS)
        assert guard == {200: GUARD_REQUESTS}, guard
        ids = [new_request_id("storm") for _ in range(STORM - 1)]

        def fail(request_id: str) -> int:
            return session().get(f"{app}{ERROR_PATH}", headers={"X-Request-ID": request_id}, timeout=10).status_code

        with ThreadPoolExecutor(len(ids)) as pool:  # at once: a storm
            statuses = list(pool.map(fail, ids))
        assert statuses == [500] * len(ids), statuses
        state.request_ids.extend(ids)
        if trickle is not None:
            trickle.start()
        yield state
    finally:
        state.end()
        watch.stop()


def test_an_unhandled_exception_storm_is_notified_once_per_channel(
    storm: Storm, prometheus: Prometheus, sink: WebhookSink, mailpit: Mailpit, session_log: LogFile | None
) -> None:
    def trail() -> str:
        return notification_trail(session_log, mailpit, sink)

    storm.watch.wait("app notification at the webhook sink", NOTIFICATION_TIMEOUT, trail)
    storm.watch.wait("app notification in Mailpit", NOTIFICATION_TIMEOUT, trail)

    # Every error of the storm went through the notifier: one queued per channel, the rest
    # deduplicated; the worker sent one per channel. Then nothing else can be on its way.
    def delta() -> dict[str, float]:
        return {name: value - storm.counters_before[name] for name, value in _counters(prometheus).items()}

    wait_for("the worker's sent counters in Prometheus",
             lambda: (d := delta())["sent_webhook"] >= 1 and d["sent_email"] >= 1, timeout=60, interval=0.2)
    _scrape_after(prometheus, time.time(), ("app", "worker"))
    counted = delta()
    assert counted["queued_webhook"] == 1, counted
    assert counted["queued_email"] == 1, counted
    assert counted["deduplicated"] >= STORM - 1, counted  # the trickle may have added more
    assert counted["sent_webhook"] == 1, counted
    assert counted["sent_email"] == 1, counted

    messages = [m for m in sink.messages()
                if (m.get("body") or {}).get("text", "").startswith(APP_TITLE)]
    assert len(messages) == 1, [m["body"]["text"] for m in messages]
    body = messages[0]["body"]
    fields = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}
    assert fields["request_id"] == storm.request_ids[0], fields  # the first error claimed the notification
    assert fields["endpoint"] == f"GET {ERROR_PATH}", fields
    assert fields["error_type"] == "ChaosError", fields
    mails = _titled(mailpit.subjects(), starts=APP_TITLE)
    assert mails == [body["text"]], mails


@pytest.mark.timeout(1500)  # compose: `for: 5m`, group_interval 5m
def test_high_error_rate_fires_is_delivered_and_resolves(
    provider: Provider, storm: Storm, prometheus: Prometheus, timing: Timing, sink: WebhookSink, mailpit: Mailpit,
    visibility: Visibility,
) -> None:
    storm.watch.wait("alert firing in Prometheus", timing.fire)
    (firing,) = storm.watch.wait("alert at the webhook sink", timing.deliver)
    (mail,) = storm.watch.wait("alert mail in Mailpit", timing.deliver)
    assert firing == f"[FIRING:1] {FIRING} on episodes-api", firing
    assert mail == firing

    storm.end()
    sent, diluted = dilute(provider, prometheus)
    watch = Watch(visibility, diluted, f"last of {sent} successful requests (5-minute ratio < {TARGET_RATIO:.1%})",
                  f"{ALERT} resolution")
    watch.add("resolution in Prometheus", f"no {ALERT} alert (either severity)",
              lambda: not prometheus.alerts(ALERT))
    watch.add("resolution at the webhook sink", f"[RESOLVED] {FIRING}",
              lambda: _titled(sink.titles(), starts="[RESOLVED]", contains=FIRING))
    watch.add("resolution mail in Mailpit", f"[RESOLVED] {FIRING}",
              lambda: _titled(mailpit.subjects(), starts="[RESOLVED]", contains=FIRING))
    watch.start()
    try:
        watch.wait("resolution in Prometheus", timing.resolve)
        (resolved,) = watch.wait("resolution at the webhook sink", timing.deliver_resolved)
        (resolved_mail,) = watch.wait("resolution mail in Mailpit", timing.deliver_resolved)
    finally:
        watch.stop()
    assert resolved == f"[RESOLVED] {FIRING} on episodes-api", resolved
    assert resolved_mail == resolved
