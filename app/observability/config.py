"""Settings of the instrumentation, read from the environment in one place.

Modules receive an `ObservabilityConfig`; none of them reads `os.environ`. Where OpenTelemetry
defines a standard variable (`OTEL_SERVICE_NAME`, `OTEL_SDK_DISABLED`, `OTEL_TRACES_SAMPLER`,
`OTEL_EXPORTER_OTLP_*`), that one is used; the SDK reads the sampler and exporter variables itself.

Each setting is declared once, as a field of `ObservabilityConfig`: its type, its environment
variable, its default and its description (`setting(...)`). `from_env` reads every field's variable
and parses it by the field's type; `SETTINGS`, the documented table, is built from the fields plus
`SDK_SETTINGS` (variables only the SDK reads, with no field). The README's configuration table is
checked against `SETTINGS`. A new setting is one new field, nothing else.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

# The key of a field's `Setting` in its metadata.
SETTING = "setting"


@dataclass(frozen=True)
class Setting:
    """One documented environment variable: its name, its default as written in the environment,
    and what it does. The keyword-only part says how `from_env` reads it into its field."""

    env: str
    default: str
    description: str
    # Hidden from the configuration's repr: the value is a credential (or a URL that may hold one).
    secret: bool = field(default=False, kw_only=True)
    # A bool field that holds the opposite of its variable (tracing_enabled and OTEL_SDK_DISABLED).
    negated: bool = field(default=False, kw_only=True)
    # Set to an empty string, the variable means an empty value; elsewhere empty means the default.
    empty_is_value: bool = field(default=False, kw_only=True)
    # Applied to the text before it is parsed (case of a log level or sampler name).
    normalize: Callable[[str], str] | None = field(default=None, kw_only=True, compare=False)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


# How the text of a variable becomes a field's value, by the field's declared type.
PARSERS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: float,
    bool: _flag,
    tuple[str, ...]: _split,
}


def _written(value: object) -> str:
    """A default as it would be written in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def setting(env: str, default: object, description: str, *, secret: bool = False, negated: bool = False,
            empty_is_value: bool = False, normalize: Callable[[str], str] | None = None) -> Any:
    """A field of `ObservabilityConfig` read from the variable `env`; `default` is the field's
    (typed) default, documented as it would be written in the environment."""
    documented = _written(not default if negated else default)
    declared = Setting(env, documented, description, secret=secret, negated=negated,
                       empty_is_value=empty_is_value, normalize=normalize)
    return field(default=default, repr=not secret, metadata={SETTING: declared})


@dataclass(frozen=True)
class ObservabilityConfig:
    service_name: str = setting("OTEL_SERVICE_NAME", "episodes-api",
                                "Service name of the web process in logs, traces and alerts.")
    worker_service_name: str = setting("WORKER_SERVICE_NAME", "episodes-worker",
                                       "Service name of the Celery worker in logs, traces and alerts.")
    service_namespace: str = setting("SERVICE_NAMESPACE", "episodes",
                                     "service.namespace of both processes; prefix of their Redis keys.")
    service_version: str = setting("SERVICE_VERSION", "0.1.0", "Service version in logs and traces.")
    environment: str = setting("DEPLOYMENT_ENVIRONMENT", "development", "Environment name in logs, traces and alerts.")
    log_level: str = setting("LOG_LEVEL", "INFO", "Root log level.", normalize=str.upper)
    log_file: str = setting("LOG_FILE", "",
                            "Also append JSON lines to this file (one file shared by all processes).")
    log_file_max_bytes: int = setting("LOG_FILE_MAX_BYTES", 100 * 1024 * 1024, "Rotate LOG_FILE past this size.")
    log_file_backups: int = setting("LOG_FILE_BACKUPS", 5, "Rotated files kept.")
    access_log_enabled: bool = setting("ACCESS_LOG_ENABLED", True, "One api_access record per request.")
    access_log_excluded_paths: tuple[str, ...] = setting(
        "ACCESS_LOG_EXCLUDED_PATHS", ("/healthz", "/readyz"), "Paths with no access log and no trace.",
        empty_is_value=True)
    slow_query_threshold_ms: float = setting("SLOW_QUERY_THRESHOLD_MS", 100.0,
                                             "Statements at or above this duration are logged.")
    statement_max_chars: int = setting("SLOW_QUERY_STATEMENT_MAX_CHARS", 2048,
                                       "Logged statements are cut to this length.")
    http_metrics_enabled: bool = setting("HTTP_METRICS_ENABLED", True, "Request count, duration and in-flight metrics.")
    metrics_bind_address: str = setting("METRICS_BIND_ADDRESS", "127.0.0.1",
                                        "Address of the separate metrics listener.")
    metrics_port: int = setting("METRICS_PORT", 9464, "Port of the web process's metrics listener.")
    worker_metrics_port: int = setting("WORKER_METRICS_PORT", 9465, "Port of the Celery worker's metrics listener.")
    multiproc_dir: str = setting("PROMETHEUS_MULTIPROC_DIR", "", "Shared metrics directory; set before Python starts.")
    tracing_enabled: bool = setting("OTEL_SDK_DISABLED", True, "Turns tracing off entirely.", negated=True)
    traces_sampler: str = setting("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "Sampler (read by the SDK).",
                                  normalize=str.lower)
    traces_sampler_arg: str = setting("OTEL_TRACES_SAMPLER_ARG", "0.1", "Sampling ratio (read by the SDK).")
    traces_protocol: str = setting(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json",
        "Trace export encoding: `http/json` (this package's, a third of protobuf's cost) or `http/protobuf`.",
        normalize=str.lower)
    server_spans: str = setting(
        "TRACE_SERVER_SPANS", "lean",
        "Server spans: `lean` (this package's, sampled before attribute work) or `upstream` "
        "(opentelemetry-instrumentation-flask).",
        normalize=str.lower)
    sql_spans: str = setting(
        "TRACE_SQL_SPANS", "lean",
        "SQL spans: `lean` (this package's, each engine's attributes worked out once) or `upstream` "
        "(opentelemetry-instrumentation-sqlalchemy).",
        normalize=str.lower)
    sql_commenter: bool = setting("TRACE_SQL_COMMENTER", False, "Append traceparent comments to SQL statements.")
    redis_url: str = setting("REDIS_URL", "redis://127.0.0.1:6379/0",
                             "Redis for error aggregation, dedupe, active users.", secret=True)  # may hold a password
    error_window_seconds: int = setting("ERROR_WINDOW_SECONDS", 3600, "Sliding window of the error aggregation.")
    alert_dedupe_seconds: int = setting("ALERT_DEDUPE_SECONDS", 600,
                                        "One notification per error fingerprint per this window.")
    active_user_window_seconds: int = setting("ACTIVE_USER_WINDOW_SECONDS", 300,
                                              "A user is active if seen within this window.")
    degraded_warning_interval_seconds: float = setting("DEGRADED_WARNING_INTERVAL_SECONDS", 60.0,
                                                       "At most one warning per interval per failing part.")
    alert_webhook_url: str = setting("ALERT_WEBHOOK_URL", "", "Slack-compatible incoming webhook; empty disables it.",
                                     secret=True)  # a Slack webhook URL is a credential
    alert_email_to: tuple[str, ...] = setting("ALERT_EMAIL_TO", (),
                                              "Comma-separated recipients; empty disables e-mail.")
    alert_email_from: str = setting("ALERT_EMAIL_FROM", "alerts@localhost", "Sender address of alert e-mails.")
    alert_spool_dir: str = setting("ALERT_SPOOL_DIR", "",
                                   "Held alerts are kept here until queued, for the next process; empty: memory only.")
    smtp_host: str = setting("SMTP_HOST", "127.0.0.1", "SMTP server for alert e-mails.")
    smtp_port: int = setting("SMTP_PORT", 1025, "SMTP port.")
    smtp_username: str = setting("SMTP_USERNAME", "", "SMTP user; empty for no authentication.")
    smtp_password: str = setting("SMTP_PASSWORD", "", "SMTP password (secret).", secret=True)
    smtp_starttls: bool = setting("SMTP_STARTTLS", False, "Upgrade the SMTP connection with STARTTLS.")
    notify_timeout_seconds: float = setting("NOTIFY_TIMEOUT_SECONDS", 5.0,
                                            "Timeout of each network step of a webhook or SMTP attempt; a whole "
                                            "attempt is cut off (and retried) after three times this.")
    notify_max_retries: int = setting("NOTIFY_MAX_RETRIES", 6, "Retries of a transient notification failure.")
    notify_backoff_max_seconds: int = setting("NOTIFY_BACKOFF_MAX_SECONDS", 300,
                                              "Longest wait between retries (well below visibility timeout).")
    admin_token: str = setting("ADMIN_TOKEN", "", "Bearer token of the /admin endpoints; empty disables them.",
                               secret=True)
    redact_keys: tuple[str, ...] = setting(
        "REDACT_KEYS", ("password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "cookie"),
        "Names whose values are replaced in logs, spans and alerts.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilityConfig:
        """The configuration in `environ` (the process's environment by default); a variable that is
        unset or empty takes its documented default."""
        env = os.environ if environ is None else environ
        types = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            declared: Setting = f.metadata[SETTING]
            text = env.get(declared.env, "")
            if not text and not (declared.empty_is_value and declared.env in env):
                text = declared.default
            if declared.normalize:
                text = declared.normalize(text)
            value = PARSERS[types[f.name]](text)
            values[f.name] = not value if declared.negated else value
        return cls(**values)

    def as_worker(self) -> ObservabilityConfig:
        """This configuration for the Celery worker's process: the same settings under the worker's
        service name, so traces and logs tell a slow worker from a slow web process."""
        return replace(self, service_name=self.worker_service_name)


# Documented variables that the OpenTelemetry SDK reads itself; no field holds them.
SDK_SETTINGS: tuple[Setting, ...] = (
    Setting("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTLP/HTTP collector (read by the SDK)."),
    Setting("OTEL_BSP_SCHEDULE_DELAY", "5000", "Span export delay in ms (read by the SDK)."),
)

# The documented table, in the README's order: the fields' settings, then the SDK's own.
SETTINGS: tuple[Setting, ...] = tuple(f.metadata[SETTING] for f in fields(ObservabilityConfig)) + SDK_SETTINGS
