"""One request followed through its access record and its trace, in either provider.

A synchronous extraction with a chosen X-Request-ID: its access record carries that id and a trace
id (the log file natively, Elasticsearch in compose); Jaeger has that trace with the Flask server
span, SQL and Redis spans and the design's spans extract_assets -> load_episode / ai_call /
save_assets. A queued extraction: the Celery task's spans join the request's trace.

Each signal is watched from the response on, at the same time (tests/support/visibility.py): Jaeger
is searched by the span attribute request.id, so the trace's figure does not wait for the record's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.e2e_app import TRACE_ID, USER, access_record, create_episode, find_records, new_request_id
from tests.support.e2e_clients import Jaeger, LogFile, Trace, session
from tests.support.e2e_stack import Provider
from tests.support.visibility import Visibility, Watch

SERVICE = "episodes-api"
WORKER_SERVICE = "episodes-worker"
EXTRACT_ROUTE = "/api/episodes/<id:episode_id>/extract"
ASYNC_ROUTE = "/api/episodes/<id:episode_id>/extract-async"
RECORD_TIMEOUT = {"native": 10, "compose": 180}  # compose: Filebeat -> Logstash -> Elasticsearch
TRACE_TIMEOUT = 60
DESIGN_CHILDREN = {"load_episode", "ai_call", "save_assets"}
SYNC_SPANS = {f"POST {EXTRACT_ROUTE}", "extract_assets", *DESIGN_CHILDREN}
ASYNC_SPANS = {f"POST {ASYNC_ROUTE}", "apply_async/service.extract_assets", "run/service.extract_assets",
               "extract_assets", *DESIGN_CHILDREN}


@pytest.fixture(scope="module")
def episode_id(provider: Provider) -> int:
    return create_episode(provider, "E2E request trail")


def _descendants(trace: Trace, span: dict[str, Any]) -> list[dict[str, Any]]:
    found, todo = [], [span]
    while todo:
        for child in trace.children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _db(trace: Trace, spans: list[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    return [span for span in spans if trace.tags(span).get("db.system") == system]


def _complete_trace(jaeger: Jaeger, request_id: str, operations: set[str]) -> Callable[[], Trace | None]:
    """A probe: the one trace with a span tagged request.id=<request_id>, once it has ``operations``."""

    def probe() -> Trace | None:
        ids = jaeger.find(SERVICE, {"request.id": request_id})
        assert len(ids) <= 1, f"{len(ids)} traces carry request.id={request_id}: {ids}"
        trace = jaeger.trace(ids[0]) if ids else None
        return trace if trace is not None and operations <= trace.operations() else None

    return probe


def new_user(request_id: str) -> str:
    return f"u-{request_id[-12:]}"


def _record_where(log: LogFile | None) -> str:
    return "log file" if log is not None else "Elasticsearch"


# --- the synchronous extraction ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sync_watch(provider: Provider, session_log: LogFile | None, visibility: Visibility, jaeger: Jaeger,
               episode_id: int) -> Iterator[tuple[str, Watch]]:
    request_id = new_request_id("sync")
    # A user not seen before: the app records it in Redis (ZADD), at most every 30 s per user and process.
    response = session().post(f"{provider.url('app')}/api/episodes/{episode_id}/extract", timeout=30,
                              headers={"X-Request-ID": request_id, "X-User-ID": new_user(request_id)})
    watch = Watch(visibility, time.time(), "response", "sync extraction")
    watch.add(f"access record in the {_record_where(session_log)}", f"api_access record with request_id {request_id}",
              lambda: access_record(provider, session_log, request_id))
    watch.add("trace in Jaeger", "server span, extract_assets and its three children",
              _complete_trace(jaeger, request_id, SYNC_SPANS))
    watch.start()
    try:
        assert response.status_code == 200, response.text
        assert response.headers["X-Request-ID"] == request_id
        yield request_id, watch
    finally:
        watch.stop()


@pytest.fixture(scope="module")
def sync_record(provider: Provider, session_log: LogFile | None, sync_watch: tuple[str, Watch]) -> dict[str, Any]:
    _request_id, watch = sync_watch
    return watch.wait(f"access record in the {_record_where(session_log)}", RECORD_TIMEOUT[provider.mode])


def test_the_access_record_has_the_request_id_and_a_trace_id(
    sync_watch: tuple[str, Watch], sync_record: dict[str, Any]
) -> None:
    request_id, _watch = sync_watch
    record = sync_record
    assert record["request_id"] == request_id
    assert record["status_code"] == 200
    assert record["endpoint"] == EXTRACT_ROUTE
    assert record["request"]["method"] == "POST"
    assert record["user_id"] == new_user(request_id)
    assert TRACE_ID.match(record.get("trace_id", "")), record


def test_jaeger_has_the_trace_with_server_sql_redis_and_design_spans(
    sync_watch: tuple[str, Watch], sync_record: dict[str, Any]
) -> None:
    request_id, watch = sync_watch
    trace: Trace = watch.wait("trace in Jaeger", TRACE_TIMEOUT)
    trace_id = sync_record["trace_id"]
    assert {span["traceID"] for span in trace.spans} == {trace_id}, "the trace of the access record"

    server = trace.one(f"POST {EXTRACT_ROUTE}")
    server_tags = trace.tags(server)
    assert server_tags.get("span.kind") == "server", server_tags
    assert server_tags.get("request.id") == request_id, server_tags
    assert trace.service(server) == SERVICE
    assert trace.parent_id(server) is None, "the server span is the trace's root"

    extract = trace.one("extract_assets")
    assert trace.parent_id(extract) == server["spanID"]
    children = {span["operationName"]: span for span in trace.children(extract)}
    assert set(children) >= DESIGN_CHILDREN, sorted(children)
    assert trace.tags(children["ai_call"]).get("provider") == "simulated"

    # SQL: the episode's SELECT under load_episode, the DELETE/INSERT under save_assets.
    for name in ("load_episode", "save_assets"):
        sql = _db(trace, _descendants(trace, children[name]), "postgresql")
        assert sql, f"no span with db.system=postgresql under {name}: {sorted(trace.operations())}"
    # Redis: the active-user ZADD of the new X-User-ID, under the server span.
    redis_spans = _db(trace, _descendants(trace, server), "redis")
    assert "ZADD" in {span["operationName"] for span in redis_spans}, \
        f"no ZADD span with db.system=redis under the server span: {sorted(trace.operations())}"


# --- the queued extraction -----------------------------------------------------------------------------


def test_the_celery_task_joins_the_request_trace(
    provider: Provider, session_log: LogFile | None, visibility: Visibility, jaeger: Jaeger, episode_id: int
) -> None:
    request_id = new_request_id("async")
    response = session().post(f"{provider.url('app')}/api/episodes/{episode_id}/extract-async", timeout=30,
                              headers={"X-Request-ID": request_id, "X-User-ID": USER})
    watch = Watch(visibility, time.time(), "202 response", "queued extraction")
    watch.add("Celery task spans in Jaeger", "run/service.extract_assets and its children in the request's trace",
              _complete_trace(jaeger, request_id, ASYNC_SPANS))
    watch.add("worker record", "assets_extracted record with the request id",
              lambda: find_records(provider, session_log, event="assets_extracted", request_id=request_id))
    watch.start()
    try:
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        trace: Trace = watch.wait("Celery task spans in Jaeger", TRACE_TIMEOUT)
        (worker_record,) = watch.wait("worker record", RECORD_TIMEOUT[provider.mode])
    finally:
        watch.stop()
    record = access_record(provider, session_log, request_id)
    assert record is not None, f"no access record for {request_id}"
    trace_id = record["trace_id"]
    assert {span["traceID"] for span in trace.spans} == {trace_id}

    server = trace.one(f"POST {ASYNC_ROUTE}")
    publish = trace.one("apply_async/service.extract_assets")
    run = trace.one("run/service.extract_assets")
    assert trace.parent_id(publish) == server["spanID"]
    assert trace.parent_id(run) == publish["spanID"]
    assert trace.tags(run).get("span.kind") == "consumer", trace.tags(run)
    # One trace across two services: Jaeger tells the worker's spans from the web process's.
    assert (trace.service(server), trace.service(publish), trace.service(run)) == (SERVICE, SERVICE, WORKER_SERVICE)
    assert trace.process_tags(run).get("service.namespace") == trace.process_tags(server).get("service.namespace") \
        == "episodes"
    extract = trace.one("extract_assets")
    assert trace.parent_id(extract) == run["spanID"]
    assert {span["operationName"] for span in trace.children(extract)} >= DESIGN_CHILDREN
    assert _db(trace, _descendants(trace, run), "postgresql"), "no SQL span in the task"

    # The worker's own record of the task: same request id, same trace.
    assert worker_record["trace_id"] == trace_id
    assert worker_record["task"] == {"id": task_id, "name": "service.extract_assets"}
