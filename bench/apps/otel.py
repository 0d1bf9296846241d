"""OpenTelemetry's own instrumentation and nothing else: the reference for what tracing costs.

The same routes with the Flask and SQLAlchemy instrumentations, the SDK's TracerProvider (every
trace sampled) and a BatchSpanProcessor exporting over OTLP/HTTP to the harness's receiver, as the
OpenTelemetry documentation sets them up. The project's tracing-only and full-100 variants are read
against it: what they cost beyond this is the project's own.
"""

from __future__ import annotations

from flask import Flask
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy import Engine

from bench.apps.routes import add_routes


def create_app(engine: Engine | None = None) -> Flask:
    # gunicorn imports the app in each worker after fork here (no preload): the provider's export
    # thread belongs to the process that serves.
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    trace.set_tracer_provider(provider)
    app = Flask("bench.otel")
    FlaskInstrumentor().instrument_app(app)
    if engine is not None:
        SQLAlchemyInstrumentor().instrument(engine=engine)
    add_routes(app, engine)
    return app
