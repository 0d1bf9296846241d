"""What the end-to-end tests do to the app, and where they find its records, in either provider.

An access record is read from the app's JSON log file natively, and from Elasticsearch
(``app-logs-*``, written by Filebeat and Logstash) in the compose stack.
"""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from observability.notifications import alert_key_prefix
from tests.support.e2e_clients import Elasticsearch, LogFile, session
from tests.support.e2e_stack import Provider

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
SCRIPT = "INT. LAB - DAY\n\nALICE\nHand me the [scope].\n\nEXT. HARBOUR - NIGHT\n\nBOB\nThe [lantern], quick.\n"
# Chaos knobs are re-read by each process at most once a second (CHAOS_REFRESH_SECONDS): after a
# change, every gunicorn worker and Celery process applies it within this.
CHAOS_SETTLE_SECONDS = 1.5
USER = "e2e-user"


def new_request_id(kind: str = "req") -> str:
    return f"e2e-{kind}-{uuid.uuid4().hex}"


def create_episode(provider: Provider, title: str = "E2E") -> int:
    response = session().post(f"{provider.url('app')}/api/episodes", json={"title": title, "script": SCRIPT},
                              headers={"X-User-ID": USER}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def set_chaos(provider: Provider, **knobs: float) -> None:
    """PUT /admin/chaos (every knob not named goes back to its default), then wait until every process has it."""
    response = session().put(f"{provider.url('app')}/admin/chaos", json=knobs, headers=provider.admin_headers(),
                             timeout=10)
    assert response.status_code == 200, f"PUT /admin/chaos {knobs}: {response.status_code} {response.text}"
    time.sleep(CHAOS_SETTLE_SECONDS)


def hammer(url: str, count: int, threads: int = 8, method: str = "GET") -> dict[int, int]:
    """``count`` requests to ``url`` from ``threads`` threads; how many got each status."""
    per_thread = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]

    def run(n: int) -> dict[int, int]:
        statuses: dict[int, int] = {}
        with session() as http:
            for _ in range(n):
                status = http.request(method, url, timeout=30).status_code
                statuses[status] = statuses.get(status, 0) + 1
        return statuses

    totals: dict[int, int] = {}
    with ThreadPoolExecutor(threads) as pool:
        for statuses in pool.map(run, [n for n in per_thread if n]):
            for status, n in statuses.items():
                totals[status] = totals.get(status, 0) + n
    return totals


def elasticsearch(provider: Provider) -> Elasticsearch:
    return Elasticsearch(provider.url("elasticsearch"), provider.auth.get("elasticsearch"))


def find_records(provider: Provider, log: LogFile | None, **fields: str) -> list[dict[str, Any]]:
    """The app's records with these top-level field values: from the log file natively, from
    Elasticsearch (term queries) in compose."""
    if log is not None:
        return [r for r in log.records() if all(r.get(k) == v for k, v in fields.items())]
    query = {"bool": {"filter": [{"term": {key: value}} for key, value in fields.items()]}}
    return [hit["_source"] for hit in elasticsearch(provider).search("app-logs-*", query)]


def access_record(provider: Provider, log: LogFile | None, request_id: str) -> dict[str, Any] | None:
    found = find_records(provider, log, request_id=request_id, event="api_access")
    assert len(found) <= 1, f"{len(found)} access records for {request_id}: {found}"
    return found[0] if found else None


def forget_notified_errors(provider: Provider) -> None:
    """Drop the app's alert claims and delivery marks (a stack reused within ALERT_DEDUPE_SECONDS
    remembers the errors of an earlier run): the test's next error notifies afresh."""
    client = redis.Redis.from_url(provider.url("redis"), socket_timeout=5)
    try:
        prefix = alert_key_prefix(provider.settings.get("SERVICE_NAMESPACE", "episodes"))
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
