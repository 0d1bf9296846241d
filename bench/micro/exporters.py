"""Exporters of the tracing micro-benchmarks: each encodes spans as its wire exporter does, then drops
the bytes instead of posting them, so that a timing holds the encoding but no collector's time. And
the peer, OpenTelemetry's documented Flask set-up, on a provider of its own (not the global one,
which the project's side holds)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flask import Flask
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_protobuf
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from sqlalchemy import Engine

from bench.apps import bare
from observability.otlp_json import EncodedSpan, OtlpJsonSpanExporter, encode_spans


class DroppedJson(OtlpJsonSpanExporter):
    """The project's exporter: with it, `start_provider` encodes each span as it ends."""

    def __init__(self) -> None:
        super().__init__(endpoint="http://127.0.0.1:9/v1/traces")  # never reached: nothing is posted
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan | EncodedSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return super().export(spans)

    def _post(self, body: bytes) -> bool:
        return True


class DroppedEncoding(SpanExporter):
    """Encodes each whole batch on the export thread with `encode`, then drops it."""

    def __init__(self, encode: Callable[[Sequence[ReadableSpan]], bytes]) -> None:
        self._encode = encode
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._encode(spans)
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return


def dropped_protobuf() -> DroppedEncoding:
    """OpenTelemetry's OTLP/HTTP encoding, as its exporter writes the body."""
    return DroppedEncoding(lambda spans: encode_protobuf(spans).SerializeToString())


def dropped_json_per_batch() -> DroppedEncoding:
    """The project's OTLP/JSON written a whole batch at a time on the export thread (before issue 12's
    last lever; what `start_provider` does with any exporter other than the JSON one)."""
    return DroppedEncoding(encode_spans)


def otel_peer(exporter: SpanExporter, engine: Engine | None = None) -> tuple[Flask, TracerProvider]:
    """Bare Flask instrumented by `FlaskInstrumentor` (and `engine` by `SQLAlchemyInstrumentor`) on an
    always-sampling provider with a batch processor ending in `exporter`."""
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    app = bare.create_app(engine)
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    if engine is not None:
        SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    return app, provider
