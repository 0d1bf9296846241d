"""Entry point for the web process: `init_observability(app, ...)` wires every concern into Flask."""

from __future__ import annotations

from celery import Celery
from flask import Flask, request
from flask.logging import default_handler
from sqlalchemy.engine import Engine

from observability import process
from observability.access_log import init_access_log
from observability.bootstrap import Observability, build_observability
from observability.config import ObservabilityConfig
from observability.error_aggregation import ErrorReport
from observability.errors import admin_blueprint, init_error_capture
from observability.http_metrics import init_http_metrics
from observability.redaction import hide_bound_values_in_errors
from observability.request_id import init_request_id
from observability.slow_queries import watch_engine
from observability.task_request_id import propagate_to_tasks


def init_observability(
    app: Flask,
    *,
    config: ObservabilityConfig | None = None,
    celery: Celery | None = None,
    engine: Engine | None = None,
) -> Observability:
    """Logs, request ids, access log, metrics, error capture and alerts, slow queries and traces.

    Call right after creating the app, before registering its own hooks. Nothing here starts a
    thread or opens a socket: the trace exporter starts per process (see `observability.process`)
    and the metrics listener is started by the server (`Observability.serve_metrics`).
    """
    config = config or ObservabilityConfig.from_env()
    obs = build_observability(config, celery)
    app.logger.removeHandler(default_handler)
    server_spans = None
    if config.tracing_enabled:
        from observability import tracing  # noqa: PLC0415 - OpenTelemetry is loaded only when used

        server_spans = tracing.server_spans(config)
    request_hooks = obs.request_hooks = init_request_id(app, config.tracing_enabled, server_spans)
    if config.http_metrics_enabled:
        init_http_metrics(request_hooks)
    if config.access_log_enabled:
        init_access_log(request_hooks, config.access_log_excluded_paths)
    init_error_capture(app, obs.errors, obs.redactor, lambda report, _error: _alert(obs, report))
    app.register_blueprint(admin_blueprint(obs.errors, config.admin_token))
    if engine is not None:
        hide_bound_values_in_errors(engine)
        watch_engine(engine, config.slow_query_threshold_ms, config.statement_max_chars, obs.redactor)
    if celery is not None:
        propagate_to_tasks()
    if config.tracing_enabled:
        tracing.instrument_libraries(config, app=None if server_spans else app, engine=engine)
        process.start(lambda: tracing.start_provider(config))
    process.start(obs.notifier.recover)  # what an earlier process left in the alert spool
    app.extensions["observability"] = obs
    return obs


def _alert(obs: Observability, report: ErrorReport) -> None:
    from observability.context import current_request_id  # noqa: PLC0415

    details = {
        "request_id": current_request_id() or "",
        "endpoint": f"{request.method} {request.url_rule.rule if request.url_rule else request.path}",
        "error_type": report.error_type,
        "where": report.frame,
    }
    if obs.config.tracing_enabled:
        from observability.tracing import current_trace_id  # noqa: PLC0415

        details["trace_id"] = current_trace_id() or ""
    obs.notifier.notify(
        report.fingerprint,
        severity="critical",
        title=f"[CRITICAL] {report.error_type} in {obs.config.service_name} ({obs.config.environment})",
        message=f"{report.error_type}: {report.message}",
        details=details,
    )
