"""Prometheus has what the app counted, exactly: every request to an endpoint that only this test
calls, every duration observation, every AI call by outcome. Each figure is read at a scrape that
started after the last response, so nothing is still on its way."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.support.e2e_app import USER, create_episode, set_chaos
from tests.support.e2e_clients import Prometheus, scraped_after, session
from tests.support.e2e_stack import Provider
from tests.support.visibility import Visibility, wait_for, wait_visible

# Called by no other test and not by the load generator while it is paused: its counts are this test's.
DEDICATED_ROUTE = "/api/episodes/<id:episode_id>/assets"
REQUESTS = 7
AI_SUCCESSES = 3
AI_FAILURES = 2


@pytest.fixture(scope="module")
def scrape_timeout(prometheus: Prometheus) -> float:
    scrape, _evaluation = prometheus.intervals()
    return 3 * scrape + 15


def _counts_after(prometheus: Prometheus, moment: float, queries: dict[str, str]) -> Callable[[], dict[str, float]]:
    """A probe: the queries' values once a scrape after ``moment`` is in (absent series count 0)."""

    def probe() -> dict[str, float]:
        if not scraped_after(prometheus, moment):
            return {}
        return {name: prometheus.value(expr) or 0.0 for name, expr in queries.items()}

    return probe


def test_prometheus_has_exactly_the_requests_sent_and_their_durations(
    provider: Provider, prometheus: Prometheus, visibility: Visibility, scrape_timeout: float,
    no_background_traffic: None,
) -> None:
    episode_id = create_episode(provider, "E2E metrics")
    queries = {"requests": f'sum(http_requests_total{{endpoint="{DEDICATED_ROUTE}"}})',
               "durations": f'sum(http_request_duration_seconds_count{{endpoint="{DEDICATED_ROUTE}"}})'}
    before = wait_for("a scrape before the requests", _counts_after(prometheus, time.time(), queries),
                      scrape_timeout)

    http = session()
    for _ in range(REQUESTS):
        response = http.get(f"{provider.url('app')}/api/episodes/{episode_id}/assets", timeout=10,
                            headers={"X-User-ID": USER})
        assert response.status_code == 200, response.text
    last_answered = time.time()

    after = wait_visible(visibility, "sample in Prometheus", last_answered, f"last of {REQUESTS} responses",
                         "http_requests_total of a scrape after them",
                         _counts_after(prometheus, last_answered, queries), timeout=scrape_timeout,
                         test="http_requests_total")
    assert after["requests"] - before["requests"] == REQUESTS, (before, after)
    assert after["durations"] - before["durations"] == REQUESTS, (before, after)


def test_prometheus_counts_ai_calls_by_outcome_under_the_chaos_knob(
    provider: Provider, prometheus: Prometheus, visibility: Visibility, scrape_timeout: float,
    no_background_traffic: None,
) -> None:
    episode_id = create_episode(provider, "E2E AI calls")
    queries = {status: f'sum(ai_calls_total{{job="app", status="{status}"}})' for status in ("success", "failed")}
    http = session()
    extract = f"{provider.url('app')}/api/episodes/{episode_id}/extract"
    set_chaos(provider, ai_failure_rate=0.0)
    try:
        before = wait_for("a scrape before the extractions", _counts_after(prometheus, time.time(), queries),
                          scrape_timeout)
        for _ in range(AI_SUCCESSES):
            response = http.post(extract, timeout=30)
            assert response.status_code == 200, response.text
        set_chaos(provider, ai_failure_rate=1.0)
        for _ in range(AI_FAILURES):
            response = http.post(extract, timeout=30)
            assert response.status_code == 502, response.text  # the provider failed: Bad Gateway
        last_answered = time.time()
    finally:
        set_chaos(provider)

    after = wait_visible(visibility, "sample in Prometheus", last_answered, "last extraction response",
                         "ai_calls_total of a scrape after it", _counts_after(prometheus, last_answered, queries),
                         timeout=scrape_timeout, test="ai_calls_total")
    assert after["success"] - before["success"] == AI_SUCCESSES, (before, after)
    assert after["failed"] - before["failed"] == AI_FAILURES, (before, after)
