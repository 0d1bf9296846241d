"""The OTLP/HTTP receiver of the benchmarks and the tests: answers at once, counts per sender, keeps on request."""

from __future__ import annotations

import gzip

import requests

from sandbox.otlp_receiver import OtlpReceiver


def _export(url: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": "application/x-protobuf", **headers}, timeout=5)


def test_exports_are_answered_empty_and_counted_per_sender_and_discarded() -> None:
    receiver = OtlpReceiver()
    try:
        answer = _export(receiver.endpoint("seed"), b"x" * 100)
        _export(receiver.endpoint("seed"), b"y" * 50)
        _export(receiver.endpoint("bare"), b"z")
    finally:
        receiver.close()
    assert (answer.status_code, answer.content) == (200, b"")  # an empty ExportTraceServiceResponse
    assert (receiver.counts("seed").requests, receiver.counts("seed").bytes) == (2, 150)
    assert receiver.counts("bare").requests == 1
    assert receiver.counts("nobody").requests == 0
    assert receiver.bodies() == []  # discarding: nothing kept


def test_a_keeping_receiver_keeps_each_body_uncompressed() -> None:
    receiver = OtlpReceiver(keep=True)
    try:
        _export(f"{receiver.url}/v1/traces", b"plain")
        _export(f"{receiver.url}/v1/traces", gzip.compress(b"zipped"), **{"Content-Encoding": "gzip"})
    finally:
        receiver.close()
    assert receiver.bodies() == [b"plain", b"zipped"]
    assert receiver.counts("v1").bytes == len(b"plain") + len(gzip.compress(b"zipped"))  # as sent


def _spans(count: int) -> list:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for tracer_name in ("one", "two"):  # two scopes: the count spans them
        for _ in range(count):
            provider.get_tracer(tracer_name).start_span("s").end()
    return list(memory.get_finished_spans())


def test_spans_are_counted_in_either_encoding_and_other_bodies_are_unreadable() -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_protobuf

    from observability.otlp_json import encode_spans as encode_json

    receiver = OtlpReceiver()
    try:
        _export(receiver.endpoint("proto"), encode_protobuf(_spans(3)).SerializeToString())
        _export(receiver.endpoint("proto"), gzip.compress(encode_protobuf(_spans(2)).SerializeToString()),
                **{"Content-Encoding": "gzip"})
        _export(receiver.endpoint("json"), encode_json(_spans(4)), **{"Content-Type": "application/json"})
        _export(receiver.endpoint("json"), b'["not", "an", "export"]', **{"Content-Type": "application/json"})
    finally:
        receiver.close()
    assert (receiver.counts("proto").spans, receiver.counts("proto").unreadable) == (10, 0)
    assert (receiver.counts("json").spans, receiver.counts("json").unreadable) == (8, 1)
