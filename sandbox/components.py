"""The sandbox's components as data: ``COMPONENTS`` has one row per component, each naming those it starts after.

A row says how the component runs natively (``runner``; None: only in the compose stack), what its
first start needs (``go_tool``: a program of tools/build.sh built; ``install``: anything else, such as
a distribution downloaded), how to tell that it is healthy, what runs once it is (``setup``) and
which ports of ``.env`` it listens on; its URLs are rows of ``sandbox.urls``. Everything binds to
127.0.0.1; every health check goes through the component's API.
"""

from __future__ import annotations

import json
import smtplib
import socket
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox import monitoring, tools
from sandbox.engines import elasticsearch as es
from sandbox.engines import postgres as pg
from sandbox.engines import redis_server
from sandbox.engines.processes import Runner, Spawned
from sandbox.env import Settings
from sandbox.net import LOOPBACK
from sandbox.urls import http_url, redis_url

# Settings of .env handed to the app and the worker unchanged.
_PASSED_TO_SERVICE = ("OTEL_SERVICE_NAME", "WORKER_SERVICE_NAME", "SERVICE_NAMESPACE", "DEPLOYMENT_ENVIRONMENT",
                      "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "SLOW_QUERY_THRESHOLD_MS")
# A fixed node name, so the health check pings this worker and no other on the same broker.
WORKER_NODE = f"sandbox@{socket.gethostname()}"
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
_CHECK_TIMEOUT = 2.0


def _nothing(_s: Settings) -> None:
    return None


@dataclass(frozen=True)
class Component:
    name: str
    title: str
    runner: Runner | None = None  # None: only in the compose stack
    health: Callable[[Settings], None] | None = None  # raises while unhealthy
    ports: tuple[str, ...] = ()  # .env keys of the ports it listens on
    go_tool: str | None = None  # the program of tools/build.sh it runs
    # Before the first start, once per `up` (prints its own progress; raises MissingToolError).
    install: Callable[[Settings], None] = _nothing
    # Once it is healthy after a start: returns what it did, raises when it failed.
    setup: Callable[[Settings], str] | None = None
    # The components that must be up (healthy and set up) before it starts; the others start side by side.
    after: tuple[str, ...] = ()

    def ensure_installed(self, s: Settings) -> None:
        """What the first start needs: its Go program built (or found up to date), then ``install``."""
        if self.go_tool is not None:
            tools.ensure([self.go_tool])
        self.install(s)


# --- health checks: each raises while the component is not healthy ---------------------------------


def _http_ok(url: str) -> None:
    with _HTTP.open(url, timeout=_CHECK_TIMEOUT) as response:  # raises HTTPError on 4xx and 5xx
        response.read()


def _sink_health(s: Settings) -> None:
    _http_ok(f"{http_url(s.webhook_sink_port)}/healthz")


def _mailpit_health(s: Settings) -> None:
    _http_ok(f"{http_url(s.mailpit_ui_port)}/readyz")
    # Its SMTP listener too: that is what the app and Alertmanager use.
    with smtplib.SMTP(LOOPBACK, s.smtp_port, timeout=_CHECK_TIMEOUT) as smtp:
        code, reply = smtp.noop()
        if code != 250:
            raise RuntimeError(f"SMTP NOOP answered {code} {reply!r}")


def _jaeger_health(s: Settings) -> None:
    with _HTTP.open(f"{http_url(s.jaeger_health_port)}/status", timeout=_CHECK_TIMEOUT) as response:
        status = json.loads(response.read())
    if not status.get("healthy"):
        raise RuntimeError(f"Jaeger's health check says {status}")
    _http_ok(f"{http_url(s.jaeger_ui_port)}/api/services")  # the query service answers


def _otelcol_health(s: Settings) -> None:
    _http_ok(http_url(s.otelcol_health_port))


def _prometheus_health(s: Settings) -> None:
    _http_ok(f"{http_url(s.prometheus_port)}/-/ready")


def _alertmanager_health(s: Settings) -> None:
    _http_ok(f"{http_url(s.alertmanager_port)}/-/ready")


def _app_health(s: Settings) -> None:
    _http_ok(f"{http_url(s.app_port)}/readyz")  # 200 only with the database and Redis reachable
    _http_ok(f"{http_url(s.app_metrics_port)}/metrics")


def _worker_health(s: Settings) -> None:
    _http_ok(f"{http_url(s.worker_metrics_port)}/metrics")
    # The metrics listener starts before the worker consumes: only a ping reply says it does.
    from celery import Celery  # noqa: PLC0415 - only this check needs Celery

    client = Celery("sandbox-health", broker=redis_url(s, 1))
    client.conf.broker_connection_timeout = _CHECK_TIMEOUT
    client.conf.broker_transport_options = {"max_retries": 0}
    try:
        replies = client.control.ping(destination=[WORKER_NODE], timeout=1.0)
    finally:
        client.close()
    if not replies:
        raise RuntimeError(f"the worker {WORKER_NODE} does not answer a ping")


# --- how each component starts ----------------------------------------------------------------


def _sink_argv(s: Settings) -> list[str]:
    return [sys.executable, "-m", "sandbox.webhook_sink", "--host", LOOPBACK, "--port", str(s.webhook_sink_port)]


def _jaeger_env(s: Settings) -> dict[str, str]:
    # jaeger/config.yaml, the file compose uses, reads its listen address and ports from these.
    ports = {"JAEGER_QUERY_PORT": "JAEGER_UI_PORT", "JAEGER_QUERY_GRPC_PORT": "JAEGER_QUERY_GRPC_PORT",
             "JAEGER_OTLP_GRPC_PORT": "JAEGER_OTLP_GRPC_PORT", "JAEGER_OTLP_HTTP_PORT": "JAEGER_OTLP_HTTP_PORT",
             "JAEGER_HEALTH_PORT": "JAEGER_HEALTH_PORT", "JAEGER_METRICS_PORT": "JAEGER_METRICS_PORT"}
    return {"JAEGER_LISTEN_HOST": LOOPBACK, **{variable: s[key] for variable, key in ports.items()}}


def _jaeger_argv(s: Settings) -> list[str]:
    return [str(tools.path("jaeger")), "--config", str(s.root / "jaeger" / "config.yaml")]


def _mailpit_prepare(s: Settings) -> None:
    s.home("mailpit").mkdir(mode=0o700, parents=True, exist_ok=True)


def _mailpit_env(_s: Settings) -> dict[str, str]:
    # As compose sets them: any SMTP login accepted, at most 5000 messages kept.
    return {"MP_SMTP_AUTH_ACCEPT_ANY": "true", "MP_SMTP_AUTH_ALLOW_INSECURE": "true", "MP_MAX_MESSAGES": "5000"}


def _mailpit_argv(s: Settings) -> list[str]:
    # Its defaults listen on every interface (and POP3 on 1110): each listener is set, POP3 off;
    # no release check (it would call GitHub).
    return [str(tools.path("mailpit")), "--listen", f"{LOOPBACK}:{s.mailpit_ui_port}",
            "--smtp", f"{LOOPBACK}:{s.smtp_port}", "--pop3", "",
            "--database", str(s.home("mailpit") / "mailpit.db"), "--disable-version-check"]


def _otelcol_env(s: Settings) -> dict[str, str]:
    # extensions/otel-collector/collector.yaml, the file the compose extension uses, reads these.
    return {"APP_LOG_FILES": f"{app_log_file(s)}*",  # and its rotated copies
            "OTELCOL_STORAGE_DIR": str(s.home("otelcol")),
            "ELASTICSEARCH_URL": http_url(s.elasticsearch_port),
            "ELASTICSEARCH_USER": "", "ELASTICSEARCH_PASSWORD": "",  # the native node has no security
            "OTELCOL_HEALTH_ADDRESS": f"{LOOPBACK}:{s.otelcol_health_port}",
            "OTELCOL_METRICS_HOST": LOOPBACK, "OTELCOL_METRICS_PORT": str(s.otelcol_metrics_port)}


# The file_log receiver saves a file's position once its lines are handed on; without this gate they
# are first held in a batch of the receiver's own, which a SIGKILL loses (a kill test lost 50 lines).
OTELCOL_FEATURE_GATES = "stanza.synchronousLogEmitter"


def _otelcol_argv(s: Settings) -> list[str]:
    return [str(tools.path("otelcol")), "--config", str(s.root / "extensions" / "otel-collector" / "collector.yaml"),
            f"--feature-gates={OTELCOL_FEATURE_GATES}"]


def _prometheus_prepare(s: Settings) -> None:
    monitoring.write_prometheus_config(s, s.home("prometheus"))


def _prometheus_argv(s: Settings) -> list[str]:
    home, url = s.home("prometheus"), http_url(s.prometheus_port)
    return [str(tools.path("prometheus")), f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}", "--storage.tsdb.retention.time=7d",
            "--storage.tsdb.retention.size=1GB", f"--web.listen-address={LOOPBACK}:{s.prometheus_port}",
            f"--web.external-url={url}"]


def _alertmanager_prepare(s: Settings) -> None:
    monitoring.render_alertmanager(s, s.home("alertmanager") / "config")


def _alertmanager_argv(s: Settings) -> list[str]:
    home, url = s.home("alertmanager"), http_url(s.alertmanager_port)
    return [str(tools.path("alertmanager")), f"--config.file={home / 'config' / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}", f"--web.listen-address={LOOPBACK}:{s.alertmanager_port}",
            f"--web.external-url={url}",
            "--cluster.listen-address="]  # one instance: no gossip listener (its default binds 0.0.0.0:9094)


def service_env(s: Settings) -> dict[str, str]:
    """The environment of both the app and the worker."""
    return {
        "DATABASE_URL": pg.dsn(s.postgres_password, s.postgres_port),
        "REDIS_URL": redis_url(s, 0),
        "CELERY_BROKER_URL": redis_url(s, 1),
        "ADMIN_TOKEN": s.admin_token,
        "ALERT_WEBHOOK_URL": monitoring.webhook_url(s),
        "ALERT_EMAIL_TO": s.alert_email_to,
        "SMTP_HOST": LOOPBACK,
        "SMTP_PORT": str(s.smtp_port),
        "LOG_FILE": str(app_log_file(s)),  # one JSON log for every process of the app and the worker
        **{key: s[key] for key in _PASSED_TO_SERVICE},
        # Traces to the native Jaeger, exported within SANDBOX_SPAN_EXPORT_DELAY_MS (the SDK waits 5 s).
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": http_url(s.jaeger_otlp_http_port),
        "OTEL_BSP_SCHEDULE_DELAY": s.span_export_delay_ms,
    }


def app_log_file(s: Settings) -> Path:
    return (s.logs_dir / "app.jsonl").absolute()


def _metrics_dir(s: Settings, name: str) -> Path:
    return s.home(name) / "metrics"


def _app_dir(s: Settings) -> Path:
    return s.root / "app"


def _app_prepare(s: Settings) -> None:
    _metrics_dir(s, "app").mkdir(parents=True, exist_ok=True)  # prometheus_client needs it from import time on


def _app_env(s: Settings) -> dict[str, str]:
    return {**service_env(s), "APP_BIND": f"{LOOPBACK}:{s.app_port}", "METRICS_PORT": str(s.app_metrics_port),
            "WEB_CONCURRENCY": s["WEB_CONCURRENCY"], "PROMETHEUS_MULTIPROC_DIR": str(_metrics_dir(s, "app")),
            # Kept across restarts (unlike the metrics): alerts a killed process held are sent by the next.
            "ALERT_SPOOL_DIR": str(s.home("app") / "alert-spool")}


def _app_argv(_s: Settings) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


def _worker_prepare(s: Settings) -> None:
    _metrics_dir(s, "worker").mkdir(parents=True, exist_ok=True)


def _worker_env(s: Settings) -> dict[str, str]:
    return {**service_env(s), "WORKER_METRICS_PORT": str(s.worker_metrics_port),
            "PROMETHEUS_MULTIPROC_DIR": str(_metrics_dir(s, "worker"))}


def _worker_argv(s: Settings) -> list[str]:
    # --quiet (a global option, before the command): no start-up banner, which is not a JSON record.
    return [sys.executable, "-m", "celery", "--quiet", "-A", "service.worker:celery_app", "worker",
            "--pool", "prefork", "--concurrency", s["WORKER_CONCURRENCY"], "--without-gossip", "--without-mingle",
            "--hostname", WORKER_NODE]


COMPONENTS: tuple[Component, ...] = (
    Component("postgres", "PostgreSQL", pg.PostgresRunner(), pg.health, ports=("POSTGRES_PORT",)),
    Component("redis", "Redis", redis_server.SANDBOX_RUNNER, redis_server.health, ports=("REDIS_PORT",)),
    Component("elasticsearch", "Elasticsearch", es.ElasticsearchRunner(), es.health,
              ports=("ELASTICSEARCH_PORT", "ELASTICSEARCH_TRANSPORT_PORT"), install=es.install, setup=es.provision),
    # After Elasticsearch's setup, so that the first documents land in indices with the template's
    # mapping. It reads the log file from its start, so the app need not wait for it.
    Component("otelcol", "log shipper (OpenTelemetry Collector)", Spawned(_otelcol_argv, _otelcol_env),
              _otelcol_health, ports=("OTELCOL_HEALTH_PORT", "OTELCOL_METRICS_PORT"), go_tool="otelcol",
              after=("elasticsearch",)),
    Component("jaeger", "Jaeger", Spawned(_jaeger_argv, _jaeger_env), _jaeger_health,
              ports=("JAEGER_UI_PORT", "JAEGER_QUERY_GRPC_PORT", "JAEGER_OTLP_GRPC_PORT", "JAEGER_OTLP_HTTP_PORT",
                     "JAEGER_HEALTH_PORT", "JAEGER_METRICS_PORT"), go_tool="jaeger"),
    Component("mailpit", "Mailpit", Spawned(_mailpit_argv, _mailpit_env, prepare=_mailpit_prepare), _mailpit_health,
              ports=("MAILPIT_UI_PORT", "SMTP_PORT"), go_tool="mailpit"),
    Component("webhook_sink", "webhook sink", Spawned(_sink_argv), _sink_health, ports=("WEBHOOK_SINK_PORT",)),
    # Jaeger first, so that the first requests' spans are not dropped.
    Component("app", "app (gunicorn)", Spawned(_app_argv, _app_env, _app_dir, _app_prepare), _app_health,
              ports=("APP_PORT", "APP_METRICS_PORT"), after=("postgres", "redis", "jaeger")),
    Component("worker", "Celery worker", Spawned(_worker_argv, _worker_env, _app_dir, _worker_prepare),
              _worker_health, ports=("WORKER_METRICS_PORT",), after=("postgres", "redis", "jaeger")),
    Component("alertmanager", "Alertmanager", Spawned(_alertmanager_argv, prepare=_alertmanager_prepare),
              _alertmanager_health, ports=("ALERTMANAGER_PORT",), go_tool="alertmanager"),
    # Last, so that its first scrapes find every target up and no TargetDown starts pending.
    Component("prometheus", "Prometheus", Spawned(_prometheus_argv, prepare=_prometheus_prepare), _prometheus_health,
              ports=("PROMETHEUS_PORT",), go_tool="prometheus",
              after=("app", "worker", "alertmanager", "jaeger")),
    # Only in the compose stack:
    Component("filebeat", "Filebeat"),
    Component("logstash", "Logstash"),
    Component("kibana", "Kibana"),
    Component("grafana", "Grafana"),
)


def native() -> list[Component]:
    """The components that run natively, each after those it names in ``after``."""
    return [c for c in COMPONENTS if c.runner is not None]


def docker_only() -> list[Component]:
    return [c for c in COMPONENTS if c.runner is None]


def go_tools() -> list[str]:
    """The programs of tools/build.sh the native sandbox runs."""
    return [c.go_tool for c in native() if c.go_tool is not None]
