"""The span exporter's redaction (`observability.tracing.RedactingSpanExporter`): what the Flask
instrumentation really records about a request carrying secrets, and what leaves the process."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from observability.config import ObservabilityConfig
from observability.redaction import REDACTED, Redactor
from observability.tracing import RedactingSpanExporter, redact_span
from tests.support.demo_app import build_demo_app

SECRET = "S3CR3T-span-0123"
REDACTOR = Redactor(ObservabilityConfig().redact_keys)


def _private_tracer() -> tuple[object, InMemorySpanExporter]:
    """A provider of this test's own (not the process's), exporting through the redaction."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(exported, REDACTOR)))
    return provider.get_tracer("test"), exported


def test_the_flask_span_of_a_request_with_a_secret_query_leaves_without_it(make_config, spans) -> None:
    app, _ = build_demo_app(make_config(tracing_enabled=True))
    app.test_client().get(f"/items/3?token={SECRET}&api_key={SECRET}&limit=2",
                          headers={"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"})
    (server,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert SECRET in server.to_json()  # what the server span records: the query string
    exported = redact_span(server, REDACTOR)
    assert SECRET not in exported.to_json()
    assert exported.attributes["url.query"] == f"token={REDACTED}&api_key={REDACTED}&limit=2"
    assert exported.context == server.context and exported.parent == server.parent
    assert exported.start_time == server.start_time and exported.end_time == server.end_time


def test_exception_events_and_error_statuses_are_redacted() -> None:
    tracer, exported = _private_tracer()
    with tracer.start_as_current_span("login", attributes={"user.password": SECRET}) as span:
        span.record_exception(RuntimeError(f"login failed password={SECRET}"))
        span.set_status(Status(StatusCode.ERROR, f"failed with api_key={SECRET}"))
    (sent,) = exported.get_finished_spans()
    assert SECRET not in sent.to_json()
    (event,) = sent.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == f"login failed password={REDACTED}"
    assert event.attributes["exception.type"] == "RuntimeError"
    assert sent.status.status_code is StatusCode.ERROR
    assert sent.status.description == f"failed with api_key={REDACTED}"
    assert sent.attributes["user.password"] == REDACTED


def test_spans_without_secrets_are_passed_on_untouched() -> None:
    provider = TracerProvider()
    kept = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    with provider.get_tracer("test").start_as_current_span("GET /api/episodes", attributes={"http.target": "/x?a=1"}):
        pass
    (span,) = kept.get_finished_spans()
    assert redact_span(span, REDACTOR) is span


def test_dropped_counts_survive_the_copy() -> None:
    provider = TracerProvider()
    kept = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    with provider.get_tracer("test").start_as_current_span("s") as span:
        span.set_attribute("http.target", f"/x?token={SECRET}")
    (original,) = kept.get_finished_spans()
    copy = redact_span(original, REDACTOR)
    assert copy is not original
    assert (copy.dropped_attributes, copy.dropped_events, copy.dropped_links) == (
        original.dropped_attributes, original.dropped_events, original.dropped_links)


def test_shutdown_and_flush_reach_the_wrapped_exporter() -> None:
    inner = InMemorySpanExporter()
    exporter = RedactingSpanExporter(inner, REDACTOR)
    assert exporter.force_flush(10) is True
    exporter.shutdown()
    assert inner._stopped


def test_the_provider_exports_through_the_redaction_with_the_configured_words(installed_providers) -> None:
    from observability import tracing

    exported = InMemorySpanExporter()
    config = ObservabilityConfig.from_env({"REDACT_KEYS": "pin", "ADMIN_TOKEN": f"admin-{SECRET}",
                                           "OTEL_TRACES_SAMPLER": "always_on"})
    provider = tracing.start_provider(config, exporter=exported)
    try:
        with provider.get_tracer("test").start_as_current_span("s", attributes={
                "card_pin": "1234", "http.target": f"/x?pin={SECRET}&token=kept", "note": f"with admin-{SECRET}"}):
            pass
        provider.force_flush()
    finally:
        provider.shutdown()
    assert installed_providers == [provider]
    (span,) = exported.get_finished_spans()
    assert span.attributes["card_pin"] == REDACTED
    assert span.attributes["http.target"] == f"/x?pin={REDACTED}&token=kept"  # REDACT_KEYS replaced the list
    assert span.attributes["note"] == f"with {REDACTED}"  # the configured admin token, wherever it appears
