"""An OTLP/HTTP trace receiver on 127.0.0.1, for the benchmarks and the tests.

It answers every export at once with an empty ExportTraceServiceResponse (in protobuf or JSON, as asked), so
what the exporters spend is their own work (batching, encoding, the HTTP request), not a collector's.
It counts the exports per path, by its first segment (``endpoint(name)`` gives each sender its own),
and the spans in them (a sender whose queue overflowed sent fewer spans than it made); with ``keep``
it also keeps every body, uncompressed, for the tests to decode.
"""

from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sandbox.net import LOOPBACK


@dataclass
class ExportCounts:
    """What one sender (one path) sent."""

    requests: int = 0
    bytes: int = 0  # as sent: compressed where the exporter compresses
    spans: int = 0
    unreadable: int = 0  # bodies that were neither OTLP/JSON nor OTLP/protobuf


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # exporters keep their connection open, as with a real collector
    # The answer's headers and body are two writes: with Nagle's algorithm the second waited for the
    # exporter's delayed ACK, about 40 ms an export, which a collector does not make it wait.
    disable_nagle_algorithm = True
    server: OtlpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.record(self.path, body, compressed=self.headers.get("Content-Encoding") == "gzip",
                           json=self.headers.get("Content-Type") == "application/json")
        # An empty ExportTraceServiceResponse, in the encoding of the request.
        answer = b"{}" if self.headers.get("Content-Type") == "application/json" else b""
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if answer else "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per export would drown the output of whoever runs it


class OtlpReceiver(ThreadingHTTPServer):
    """Serves from a daemon thread as soon as it is made; ``close()`` stops it."""

    daemon_threads = True

    def __init__(self, *, keep: bool = False) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self._keep = keep
        self._lock = threading.Lock()
        self._counts: dict[str, ExportCounts] = defaultdict(ExportCounts)
        self._bodies: list[bytes] = []
        threading.Thread(target=self.serve_forever, name="otlp-receiver", daemon=True).start()

    @property
    def url(self) -> str:
        """The base URL: OTEL_EXPORTER_OTLP_ENDPOINT, to which exporters add /v1/traces."""
        return f"http://{LOOPBACK}:{self.server_address[1]}"

    def endpoint(self, name: str) -> str:
        """A traces URL of its own for one sender; its exports are counted under ``name``."""
        return f"{self.url}/{name}/v1/traces"

    def record(self, path: str, body: bytes, *, compressed: bool, json: bool = False) -> None:
        name = path.strip("/").split("/", 1)[0]
        plain = gzip.decompress(body) if compressed else body
        spans = count_spans(plain, json=json)
        with self._lock:
            counts = self._counts[name]
            counts.requests += 1
            counts.bytes += len(body)
            if spans is None:
                counts.unreadable += 1
            else:
                counts.spans += spans
            if self._keep:
                self._bodies.append(plain)

    def counts(self, name: str) -> ExportCounts:
        """What was sent to ``endpoint(name)`` so far."""
        with self._lock:
            counts = self._counts.get(name, ExportCounts())
            return ExportCounts(counts.requests, counts.bytes, counts.spans, counts.unreadable)

    def bodies(self) -> list[bytes]:
        """Every export kept (``keep``), uncompressed, in the order received."""
        with self._lock:
            return list(self._bodies)

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def count_spans(body: bytes, *, json: bool) -> int | None:
    """The spans in one ExportTraceServiceRequest, in OTLP/JSON or protobuf; None if it is neither."""
    try:
        if json:
            document = orjson.loads(body)
            return sum(len(scope.get("spans", ())) for resource in document.get("resourceSpans", ())
                       for scope in resource.get("scopeSpans", ()))
        request = ExportTraceServiceRequest.FromString(body)
        return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    except (orjson.JSONDecodeError, DecodeError, AttributeError, TypeError, ValueError):
        return None
