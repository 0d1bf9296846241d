"""The SDK floor variant: one sampled SERVER span per request, the bare app's answers unchanged."""

from __future__ import annotations

from opentelemetry.trace import SpanKind
from werkzeug.test import Client

from bench.apps import bare, sdk_floor


def test_the_floor_ends_one_server_span_per_request_and_answers_as_bare_does() -> None:
    floor = sdk_floor.create_app()
    plain = Client(bare.create_app())
    client = Client(floor)
    for _ in range(3):
        answer = client.get("/trivial", headers={"User-Agent": "bench"})
        assert (answer.status_code, answer.data) == (200, plain.get("/trivial").data)
    assert floor.provider.force_flush()
    assert floor.exporter.spans == 3
    spans = floor.exporter.last_batch
    assert {(span.name, span.kind) for span in spans} == {("GET /trivial", SpanKind.SERVER)}
    attributes = spans[-1].attributes
    assert attributes["http.response.status_code"] == 200
    assert (attributes["url.path"], attributes["user_agent.original"]) == ("/trivial", "bench")
    assert len({span.context.trace_id for span in spans}) == 3  # each request its own trace
