"""The log shipper of either provider, against Elasticsearch: every line of the shaping table
(tests/support/log_shaping.py) becomes the document the table says, and a shipper killed and started
again under load ships every line exactly once.

The shipper is the OpenTelemetry Collector natively and in the compose extension
(extensions/otel-collector), Filebeat + Logstash in the compose stack with the real images. The load
is appended to the app's own log file (inside its container in compose), where the app writes too;
the table's lines, some of them not JSON, to a file beside it that the shippers read as well
(``app.jsonl*``), so that the app's own file stays JSON for the tests that read it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.e2e_app import elasticsearch
from tests.support.e2e_clients import Elasticsearch
from tests.support.e2e_stack import Provider
from tests.support.log_shaping import Case, cases, index_of, matches
from tests.support.visibility import wait_for

SHIP_TIMEOUT = {"native": 30, "compose": 180}
TABLE_FILE = "app.jsonl.e2e-shaping"
LOAD_LINES = 3000
LOAD_SECONDS = 6.0
KILLS = 3


@pytest.fixture(scope="module")
def es(endpoint: Callable[[str], str], provider: Provider) -> Elasticsearch:
    endpoint("elasticsearch")
    provider.require(*provider.log_shipper())
    return elasticsearch(provider)


def _document(es: Elasticsearch, case: Case) -> list[dict[str, Any]]:
    if case.expected.get("request_id") == case.marker:
        query: dict[str, Any] = {"term": {"request_id": case.marker}}
    else:
        query = {"match_phrase": {"message": case.marker}}
    return es.search("app-logs-*", query)


def test_every_line_becomes_the_document_the_shaping_table_says(provider: Provider, es: Elasticsearch) -> None:
    table = cases()
    written = datetime.now(UTC)
    provider.append_app_log([case.line for case in table], TABLE_FILE)
    found = {case.name: wait_for(f"the document of the {case.name!r} line", lambda c=case: _document(es, c),
                                 timeout=SHIP_TIMEOUT[provider.mode]) for case in table}
    shipped = datetime.now(UTC)
    problems = {}
    for case in table:
        hits = found[case.name]
        assert len(hits) == 1, f"{case.name}: {len(hits)} documents"
        (hit,) = hits
        differences = matches(case, hit["_source"], (written, shipped))
        if hit["_index"] != (case.index or index_of(hit["_source"])):
            differences.append(f"index {hit['_index']}, expected {case.index or 'the day it was read'}")
        if differences:
            problems[case.name] = differences
    assert not problems, json.dumps(problems, indent=2)


def _load(provider: Provider, run: str, stop_at: float) -> int:
    """Appends LOAD_LINES records over LOAD_SECONDS, in small bursts as a busy app would."""
    bursts = 60
    per_burst = LOAD_LINES // bursts
    sent = 0
    for burst in range(bursts):
        stamp = datetime.now(UTC).isoformat()
        provider.append_app_log([json.dumps({"timestamp": stamp, "level": "INFO", "logger": "e2e.load",
                                             "message": "load", "event": "shipper_load", "request_id": run,
                                             "seq": burst * per_burst + n}) for n in range(per_burst)])
        sent += per_burst
        time.sleep(max(0.0, min(LOAD_SECONDS / bursts, stop_at - time.monotonic())))
    return sent


def test_a_shipper_killed_under_load_ships_every_line_exactly_once(provider: Provider, es: Elasticsearch) -> None:
    run = f"e2e-ship-{uuid.uuid4().hex}"
    result: dict[str, int] = {}
    writer = threading.Thread(target=lambda: result.update(sent=_load(provider, run, time.monotonic() + 30)))
    writer.start()
    try:
        for _ in range(KILLS):  # each at another point of reading, queueing and sending
            time.sleep(LOAD_SECONDS / (2 * KILLS))
            provider.kill_log_shipper()  # SIGKILL: no chance to flush or to store its position
            provider.start_log_shipper()
    finally:
        writer.join()
    sent = result["sent"]

    # Generous: after a restart the exporter's retries back off for up to a minute on a busy machine.
    deadline = time.monotonic() + SHIP_TIMEOUT[provider.mode] + 90
    while (total := es.count("app-logs-*", {"term": {"request_id": run}})) < sent and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # anything still on its way would show now
    hits = es.search("app-logs-*", {"term": {"request_id": run}}, size=10_000)
    sequence = [hit["_source"]["seq"] for hit in hits]
    missing = sorted(set(range(sent)) - set(sequence))
    doubled = len(sequence) - len(set(sequence))
    assert not missing and not doubled, (f"{sent} lines: {len(missing)} missing (the first: {missing[:5]}), "
                                         f"{doubled} doubled; count {total} after the wait")
    assert len(hits) == sent
