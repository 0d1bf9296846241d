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
