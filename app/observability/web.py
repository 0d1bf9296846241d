"""Entry point for the web process: `init_observability(app, ...)` wires every concern into Flask."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import Celery
from flask import Flask, request
from flask.logging import default_handler
from sqlalchemy.engine import Engine

from observability import process
from observability.access_log import init_access_log
from observability.config import ObservabilityConfig
from observability.degraded import GuardedRedis, ThrottledWarning
from observability.errors import ErrorAggregator, ErrorReport, admin_blueprint, init_error_capture
from observability.logging import configure_logging
from observability.metrics import build_registry, init_http_metrics, serve
from observability.notifications import Notifier
from observability.redaction import Redactor, hide_bound_values_in_errors
from observability.request_id import init_request_id, propagate_to_tasks
from observability.slow_queries import watch_engine
from observability.users import ActiveUsers


@dataclass
class Observability:
    """What a process's instrumentation holds; `app.extensions["observability"]` in the web app."""

    config: ObservabilityConfig
    redis: GuardedRedis
    warnings: ThrottledWarning
    redactor: Redactor
    errors: ErrorAggregator
    notifier: Notifier
    users: ActiveUsers

    def bind_user(self, user_id: str) -> None:
        """Marks the current request as made by `user_id` (logs, active-user gauge)."""
        self.users.bind_user(user_id)

    def serve_metrics(self, port: int) -> Any:
        """Starts the metrics listener on the configured address (call in the server's parent)."""
        registry = build_registry(self.config.multiproc_dir, extra=[self.users])
        return serve(registry, self.config.metrics_bind_address, port)


def build_observability(config: ObservabilityConfig, celery: Celery | None) -> Observability:
    configure_logging(config)
    warnings = ThrottledWarning(logging.getLogger("observability.degraded"),
                                config.degraded_warning_interval_seconds)
    redis = GuardedRedis(config.redis_url, warnings)
    return Observability(
        config=config,
        redis=redis,
        warnings=warnings,
        redactor=Redactor.from_config(config),
        errors=ErrorAggregator(redis, config.service_namespace, config.error_window_seconds),
        notifier=Notifier(config, redis, warnings, celery),
        users=ActiveUsers(redis, config.service_namespace, config.active_user_window_seconds),
    )


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
    request_hooks = init_request_id(app, config.tracing_enabled)
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
        from observability import tracing  # noqa: PLC0415 - OpenTelemetry is loaded only when used

        tracing.instrument_libraries(config, app=app, engine=engine)
        process.start(lambda: tracing.start_provider(config))
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
