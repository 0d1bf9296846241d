"""Settings of the instrumentation, read from the environment in one place.

Modules receive an `ObservabilityConfig`; none of them reads `os.environ`. Where OpenTelemetry
defines a standard variable (`OTEL_SERVICE_NAME`, `OTEL_SDK_DISABLED`, `OTEL_TRACES_SAMPLER`,
`OTEL_EXPORTER_OTLP_*`), that one is used; the SDK reads the sampler and exporter variables itself.
`SETTINGS` is the documented table: the README's configuration section is checked against it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    description: str


SETTINGS: tuple[Setting, ...] = (
    Setting("OTEL_SERVICE_NAME", "episodes-api", "Service name of the web process in logs, traces and alerts."),
    Setting("WORKER_SERVICE_NAME", "episodes-worker", "Service name of the Celery worker in logs, traces and alerts."),
    Setting("SERVICE_NAMESPACE", "episodes", "service.namespace of both processes; prefix of their Redis keys."),
    Setting("SERVICE_VERSION", "0.1.0", "Service version in logs and traces."),
    Setting("DEPLOYMENT_ENVIRONMENT", "development", "Environment name in logs, traces and alerts."),
    Setting("LOG_LEVEL", "INFO", "Root log level."),
    Setting("LOG_FILE", "", "Also append JSON lines to this file (one file shared by all processes)."),
    Setting("LOG_FILE_MAX_BYTES", "104857600", "Rotate LOG_FILE past this size."),
    Setting("LOG_FILE_BACKUPS", "5", "Rotated files kept."),
    Setting("ACCESS_LOG_ENABLED", "true", "One api_access record per request."),
    Setting("ACCESS_LOG_EXCLUDED_PATHS", "/healthz,/readyz", "Paths with no access log and no trace."),
    Setting("SLOW_QUERY_THRESHOLD_MS", "100", "Statements at or above this duration are logged."),
    Setting("SLOW_QUERY_STATEMENT_MAX_CHARS", "2048", "Logged statements are cut to this length."),
    Setting("HTTP_METRICS_ENABLED", "true", "Request count, duration and in-flight metrics."),
    Setting("METRICS_BIND_ADDRESS", "127.0.0.1", "Address of the separate metrics listener."),
    Setting("METRICS_PORT", "9464", "Port of the web process's metrics listener."),
    Setting("WORKER_METRICS_PORT", "9465", "Port of the Celery worker's metrics listener."),
    Setting("PROMETHEUS_MULTIPROC_DIR", "", "Shared metrics directory; set before Python starts."),
    Setting("OTEL_SDK_DISABLED", "false", "Turns tracing off entirely."),
    Setting("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "Sampler (read by the SDK)."),
    Setting("OTEL_TRACES_SAMPLER_ARG", "0.1", "Sampling ratio (read by the SDK)."),
    Setting("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTLP/HTTP collector (read by the SDK)."),
    Setting("OTEL_BSP_SCHEDULE_DELAY", "5000", "Span export delay in ms (read by the SDK)."),
    Setting("TRACE_SQL_COMMENTER", "false", "Append traceparent comments to SQL statements."),
    Setting("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis for error aggregation, dedupe, active users."),
    Setting("ERROR_WINDOW_SECONDS", "3600", "Sliding window of the error aggregation."),
    Setting("ALERT_DEDUPE_SECONDS", "600", "One notification per error fingerprint per this window."),
    Setting("ACTIVE_USER_WINDOW_SECONDS", "300", "A user is active if seen within this window."),
    Setting("DEGRADED_WARNING_INTERVAL_SECONDS", "60", "At most one warning per interval per failing part."),
    Setting("ALERT_WEBHOOK_URL", "", "Slack-compatible incoming webhook; empty disables it."),
    Setting("ALERT_EMAIL_TO", "", "Comma-separated recipients; empty disables e-mail."),
    Setting("ALERT_EMAIL_FROM", "alerts@localhost", "Sender address of alert e-mails."),
    Setting("SMTP_HOST", "127.0.0.1", "SMTP server for alert e-mails."),
    Setting("SMTP_PORT", "1025", "SMTP port."),
    Setting("SMTP_USERNAME", "", "SMTP user; empty for no authentication."),
    Setting("SMTP_PASSWORD", "", "SMTP password (secret)."),
    Setting("SMTP_STARTTLS", "false", "Upgrade the SMTP connection with STARTTLS."),
    Setting("NOTIFY_TIMEOUT_SECONDS", "5", "Timeout of one webhook or SMTP attempt."),
    Setting("NOTIFY_MAX_RETRIES", "6", "Retries of a transient notification failure."),
    Setting("NOTIFY_BACKOFF_MAX_SECONDS", "300", "Longest wait between retries (well below visibility timeout)."),
    Setting("ADMIN_TOKEN", "", "Bearer token of the /admin endpoints; empty disables them."),
    Setting("REDACT_KEYS", "password,passwd,secret,token,api_key,apikey,authorization,cookie",
            "Names whose values are replaced in logs, spans and alerts."),
)

_DEFAULTS = {s.env: s.default for s in SETTINGS}


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ObservabilityConfig:
    service_name: str = _DEFAULTS["OTEL_SERVICE_NAME"]
    worker_service_name: str = _DEFAULTS["WORKER_SERVICE_NAME"]
    service_namespace: str = _DEFAULTS["SERVICE_NAMESPACE"]
    service_version: str = _DEFAULTS["SERVICE_VERSION"]
    environment: str = _DEFAULTS["DEPLOYMENT_ENVIRONMENT"]
    log_level: str = _DEFAULTS["LOG_LEVEL"]
    log_file: str = ""
    log_file_max_bytes: int = int(_DEFAULTS["LOG_FILE_MAX_BYTES"])
    log_file_backups: int = int(_DEFAULTS["LOG_FILE_BACKUPS"])
    access_log_enabled: bool = True
    access_log_excluded_paths: tuple[str, ...] = _split(_DEFAULTS["ACCESS_LOG_EXCLUDED_PATHS"])
    slow_query_threshold_ms: float = float(_DEFAULTS["SLOW_QUERY_THRESHOLD_MS"])
    statement_max_chars: int = int(_DEFAULTS["SLOW_QUERY_STATEMENT_MAX_CHARS"])
    http_metrics_enabled: bool = True
    metrics_bind_address: str = _DEFAULTS["METRICS_BIND_ADDRESS"]
    metrics_port: int = int(_DEFAULTS["METRICS_PORT"])
    worker_metrics_port: int = int(_DEFAULTS["WORKER_METRICS_PORT"])
    multiproc_dir: str = ""
    tracing_enabled: bool = True
    traces_sampler: str = _DEFAULTS["OTEL_TRACES_SAMPLER"]
    traces_sampler_arg: str = _DEFAULTS["OTEL_TRACES_SAMPLER_ARG"]
    sql_commenter: bool = False
    redis_url: str = field(default=_DEFAULTS["REDIS_URL"], repr=False)  # may hold a password
    error_window_seconds: int = int(_DEFAULTS["ERROR_WINDOW_SECONDS"])
    alert_dedupe_seconds: int = int(_DEFAULTS["ALERT_DEDUPE_SECONDS"])
    active_user_window_seconds: int = int(_DEFAULTS["ACTIVE_USER_WINDOW_SECONDS"])
    degraded_warning_interval_seconds: float = float(_DEFAULTS["DEGRADED_WARNING_INTERVAL_SECONDS"])
    alert_webhook_url: str = field(default="", repr=False)  # a Slack webhook URL is a credential
    alert_email_to: tuple[str, ...] = ()
    alert_email_from: str = _DEFAULTS["ALERT_EMAIL_FROM"]
    smtp_host: str = _DEFAULTS["SMTP_HOST"]
    smtp_port: int = int(_DEFAULTS["SMTP_PORT"])
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = False
    notify_timeout_seconds: float = float(_DEFAULTS["NOTIFY_TIMEOUT_SECONDS"])
    notify_max_retries: int = int(_DEFAULTS["NOTIFY_MAX_RETRIES"])
    notify_backoff_max_seconds: int = int(_DEFAULTS["NOTIFY_BACKOFF_MAX_SECONDS"])
    admin_token: str = field(default="", repr=False)
    redact_keys: tuple[str, ...] = _split(_DEFAULTS["REDACT_KEYS"])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilityConfig:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, "") or _DEFAULTS[name]

        return cls(
            service_name=get("OTEL_SERVICE_NAME"),
            worker_service_name=get("WORKER_SERVICE_NAME"),
            service_namespace=get("SERVICE_NAMESPACE"),
            service_version=get("SERVICE_VERSION"),
            environment=get("DEPLOYMENT_ENVIRONMENT"),
            log_level=get("LOG_LEVEL").upper(),
            log_file=get("LOG_FILE"),
            log_file_max_bytes=int(get("LOG_FILE_MAX_BYTES")),
            log_file_backups=int(get("LOG_FILE_BACKUPS")),
            access_log_enabled=_flag(get("ACCESS_LOG_ENABLED")),
            access_log_excluded_paths=_split(env.get("ACCESS_LOG_EXCLUDED_PATHS", _DEFAULTS[
                "ACCESS_LOG_EXCLUDED_PATHS"])),
            slow_query_threshold_ms=float(get("SLOW_QUERY_THRESHOLD_MS")),
            statement_max_chars=int(get("SLOW_QUERY_STATEMENT_MAX_CHARS")),
            http_metrics_enabled=_flag(get("HTTP_METRICS_ENABLED")),
            metrics_bind_address=get("METRICS_BIND_ADDRESS"),
            metrics_port=int(get("METRICS_PORT")),
            worker_metrics_port=int(get("WORKER_METRICS_PORT")),
            multiproc_dir=get("PROMETHEUS_MULTIPROC_DIR"),
            tracing_enabled=not _flag(get("OTEL_SDK_DISABLED")),
            traces_sampler=get("OTEL_TRACES_SAMPLER").lower(),
            traces_sampler_arg=get("OTEL_TRACES_SAMPLER_ARG"),
            sql_commenter=_flag(get("TRACE_SQL_COMMENTER")),
            redis_url=get("REDIS_URL"),
            error_window_seconds=int(get("ERROR_WINDOW_SECONDS")),
            alert_dedupe_seconds=int(get("ALERT_DEDUPE_SECONDS")),
            active_user_window_seconds=int(get("ACTIVE_USER_WINDOW_SECONDS")),
            degraded_warning_interval_seconds=float(get("DEGRADED_WARNING_INTERVAL_SECONDS")),
            alert_webhook_url=get("ALERT_WEBHOOK_URL"),
            alert_email_to=_split(get("ALERT_EMAIL_TO")),
            alert_email_from=get("ALERT_EMAIL_FROM"),
            smtp_host=get("SMTP_HOST"),
            smtp_port=int(get("SMTP_PORT")),
            smtp_username=get("SMTP_USERNAME"),
            smtp_password=get("SMTP_PASSWORD"),
            smtp_starttls=_flag(get("SMTP_STARTTLS")),
            notify_timeout_seconds=float(get("NOTIFY_TIMEOUT_SECONDS")),
            notify_max_retries=int(get("NOTIFY_MAX_RETRIES")),
            notify_backoff_max_seconds=int(get("NOTIFY_BACKOFF_MAX_SECONDS")),
            admin_token=get("ADMIN_TOKEN"),
            redact_keys=_split(get("REDACT_KEYS")),
        )

    def as_worker(self) -> ObservabilityConfig:
        """This configuration for the Celery worker's process: the same settings under the worker's
        service name, so traces and logs tell a slow worker from a slow web process."""
        return replace(self, service_name=self.worker_service_name)
