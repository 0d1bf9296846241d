"""The sandbox's components as data: ``COMPONENTS`` has one row per component, in start order.

A row says how the component runs natively (``runner``; None when it does not), what it needs
installed first (``install``: a Go tool built, a distribution downloaded), how to tell that it is
healthy, what runs once it is (``setup``), which URLs it offers and which ports of ``.env`` it
listens on. Rows without a runner are docker-only (or would arrive natively with a later issue).
Everything binds to 127.0.0.1; every health check goes through the component's API.
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
from urllib.parse import quote

from sandbox import elasticsearch as es
from sandbox import monitoring, redis_server, tools
from sandbox import postgres as pg
from sandbox.common import LOOPBACK
from sandbox.env import Settings
from sandbox.runners import PostgresRunner, Runner, Spawned

# Settings of .env handed to the app and the worker unchanged.
_PASSED_TO_SERVICE = ("OTEL_SERVICE_NAME", "WORKER_SERVICE_NAME", "SERVICE_NAMESPACE", "DEPLOYMENT_ENVIRONMENT",
                      "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "SLOW_QUERY_THRESHOLD_MS")
# A fixed node name, so the health check pings this worker and no other on the same broker.
WORKER_NODE = f"sandbox@{socket.gethostname()}"
# Durability matters little in a sandbox; losing the last commits in a host crash is fine, corruption is not.
_PG_TUNING = {"synchronous_commit": "off"}
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
_CHECK_TIMEOUT = 2.0


@dataclass(frozen=True)
class Endpoint:
    key: str  # its name in endpoints.json
    label: str  # its row in the URL table
    url: str  # with credentials: endpoints.json only
    shown: str  # in the URL table: credentials masked, or the page worth opening


def _no_endpoints(_s: Settings) -> list[Endpoint]:
    return []


def _nothing(_s: Settings) -> None:
    return None


@dataclass(frozen=True)
class Component:
    name: str
    title: str
    runner: Runner | None = None  # None: not run natively
    health: Callable[[Settings], None] | None = None  # raises while unhealthy
    endpoints: Callable[[Settings], list[Endpoint]] = _no_endpoints
    ports: tuple[str, ...] = ()  # .env keys of the ports it listens on
    docker_only: bool = False  # runner None and not docker_only: arrives natively with a later issue
    # Before the first start, once per `up` (prints its own progress; raises MissingToolError).
    install: Callable[[Settings], None] = _nothing
    # Once it is healthy after a start: returns what it did, raises when it failed.
    setup: Callable[[Settings], str] | None = None


# --- URLs -------------------------------------------------------------------------------------------


def http_url(s: Settings, port_key: str) -> str:
    return f"http://{LOOPBACK}:{s.port(port_key)}"


def redis_url(s: Settings, db: int) -> str:
    return f"redis://:{quote(s['REDIS_PASSWORD'], safe='')}@{LOOPBACK}:{s.port('REDIS_PORT')}/{db}"


def masked(url: str, password: str) -> str:
    return url.replace(f":{quote(password, safe='')}@", ":***@", 1)


def _postgres_endpoints(s: Settings) -> list[Endpoint]:
    url = pg.dsn(s["POSTGRES_PASSWORD"], s.port("POSTGRES_PORT"), scheme="postgresql")  # libpq's form: psql takes it
    return [Endpoint("postgres", "postgres", url, masked(url, s["POSTGRES_PASSWORD"]))]


def _redis_endpoints(s: Settings) -> list[Endpoint]:
    url = redis_url(s, 0)
    return [Endpoint("redis", "redis", url, masked(url, s["REDIS_PASSWORD"]))]


def _sink_endpoints(s: Settings) -> list[Endpoint]:
    base = http_url(s, "WEBHOOK_SINK_PORT")
    return [Endpoint("webhook_sink", "webhook sink messages", base, f"{base}/messages")]


def _mailpit_endpoints(s: Settings) -> list[Endpoint]:
    address = f"{LOOPBACK}:{s.port('SMTP_PORT')}"  # host:port: SMTP has no URL scheme worth the name
    ui = http_url(s, "MAILPIT_UI_PORT")
    return [Endpoint("mailpit", "Mailpit", ui, f"{ui}/api/v1/messages (REST API; its web UI is not in the build)"),
            Endpoint("smtp", "mail catcher (SMTP)", address, address)]


def _elasticsearch_endpoints(s: Settings) -> list[Endpoint]:
    url = http_url(s, "ELASTICSEARCH_PORT")
    return [Endpoint("elasticsearch", "Elasticsearch", url, f"{url} (no security: loopback only)")]


def _otelcol_endpoints(s: Settings) -> list[Endpoint]:
    metrics = http_url(s, "OTELCOL_METRICS_PORT")
    return [Endpoint("otelcol_metrics", "log shipper metrics", metrics, f"{metrics}/metrics")]


def _jaeger_endpoints(s: Settings) -> list[Endpoint]:
    query, otlp = http_url(s, "JAEGER_UI_PORT"), http_url(s, "JAEGER_OTLP_HTTP_PORT")
    return [Endpoint("jaeger", "Jaeger", query, f"{query}/api/services (HTTP API; its web UI is not in the build)"),
            Endpoint("jaeger_otlp", "Jaeger OTLP/HTTP", otlp, f"{otlp}/v1/traces")]


def _prometheus_endpoints(s: Settings) -> list[Endpoint]:
    url = http_url(s, "PROMETHEUS_PORT")
    shown = f"{url}/api/v1/targets (HTTP API; its web UI is not in the build)"
    return [Endpoint("prometheus", "Prometheus", url, shown)]


def _alertmanager_endpoints(s: Settings) -> list[Endpoint]:
    url = http_url(s, "ALERTMANAGER_PORT")
    return [Endpoint("alertmanager", "Alertmanager", url, url)]


def _app_endpoints(s: Settings) -> list[Endpoint]:
    app, metrics = http_url(s, "APP_PORT"), http_url(s, "APP_METRICS_PORT")
    return [Endpoint("app", "app", app, app), Endpoint("metrics", "app metrics", metrics, f"{metrics}/metrics")]


def _worker_endpoints(s: Settings) -> list[Endpoint]:
    metrics = http_url(s, "WORKER_METRICS_PORT")
    return [Endpoint("worker_metrics", "worker metrics", metrics, f"{metrics}/metrics")]


# --- health checks: each raises while the component is not healthy ---------------------------------


def _http_ok(url: str) -> None:
    with _HTTP.open(url, timeout=_CHECK_TIMEOUT) as response:  # raises HTTPError on 4xx and 5xx
        response.read()


def _postgres_health(s: Settings) -> None:
    pg.probe(LOOPBACK, s.port("POSTGRES_PORT"), s["POSTGRES_PASSWORD"])()


def _redis_health(s: Settings) -> None:
    redis_server.probe(LOOPBACK, s.port("REDIS_PORT"), s["REDIS_PASSWORD"])()


def _sink_health(s: Settings) -> None:
    _http_ok(f"{http_url(s, 'WEBHOOK_SINK_PORT')}/healthz")


def _mailpit_health(s: Settings) -> None:
    _http_ok(f"{http_url(s, 'MAILPIT_UI_PORT')}/readyz")
    # Its SMTP listener too: that is what the app and Alertmanager use.
    with smtplib.SMTP(LOOPBACK, s.port("SMTP_PORT"), timeout=_CHECK_TIMEOUT) as smtp:
        code, reply = smtp.noop()
        if code != 250:
            raise RuntimeError(f"SMTP NOOP answered {code} {reply!r}")


def _jaeger_health(s: Settings) -> None:
    with _HTTP.open(f"{http_url(s, 'JAEGER_HEALTH_PORT')}/status", timeout=_CHECK_TIMEOUT) as response:
        status = json.loads(response.read())
    if not status.get("healthy"):
        raise RuntimeError(f"Jaeger's health check says {status}")
    _http_ok(f"{http_url(s, 'JAEGER_UI_PORT')}/api/services")  # the query service answers


def _otelcol_health(s: Settings) -> None:
    _http_ok(http_url(s, "OTELCOL_HEALTH_PORT"))


def _prometheus_health(s: Settings) -> None:
    _http_ok(f"{http_url(s, 'PROMETHEUS_PORT')}/-/ready")


def _alertmanager_health(s: Settings) -> None:
    _http_ok(f"{http_url(s, 'ALERTMANAGER_PORT')}/-/ready")


def _app_health(s: Settings) -> None:
    _http_ok(f"{http_url(s, 'APP_PORT')}/readyz")  # 200 only with the database and Redis reachable
    _http_ok(f"{http_url(s, 'APP_METRICS_PORT')}/metrics")


def _worker_health(s: Settings) -> None:
    _http_ok(f"{http_url(s, 'WORKER_METRICS_PORT')}/metrics")
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


def _redis_home(s: Settings) -> Path:
    return s.home("redis")


def _redis_prepare(s: Settings) -> None:
    _redis_home(s).mkdir(mode=0o700, parents=True, exist_ok=True)
    redis_server.write_config(_redis_home(s) / "redis.conf", s["REDIS_PASSWORD"])


def _redis_argv(s: Settings) -> list[str]:
    home = _redis_home(s)
    return redis_server.argv(redis_server.find_binary(), s.port("REDIS_PORT"), home, home / "redis.conf")


def _sink_argv(s: Settings) -> list[str]:
    return [sys.executable, "-m", "sandbox.webhook_sink", "--host", LOOPBACK, "--port", s["WEBHOOK_SINK_PORT"]]


def _install_tool(name: str) -> Callable[[Settings], None]:
    def install(_s: Settings) -> None:
        tools.ensure([name])

    return install


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
    return [str(tools.path("mailpit")), "--listen", f"{LOOPBACK}:{s.port('MAILPIT_UI_PORT')}",
            "--smtp", f"{LOOPBACK}:{s.port('SMTP_PORT')}", "--pop3", "",
            "--database", str(s.home("mailpit") / "mailpit.db"), "--disable-version-check"]


def _otelcol_env(s: Settings) -> dict[str, str]:
    # extensions/otel-collector/collector.yaml, the file the compose extension uses, reads these.
    return {"APP_LOG_FILES": f"{app_log_file(s)}*",  # and its rotated copies
            "OTELCOL_STORAGE_DIR": str(s.home("otelcol")),
            "ELASTICSEARCH_URL": http_url(s, "ELASTICSEARCH_PORT"),
            "ELASTICSEARCH_USER": "", "ELASTICSEARCH_PASSWORD": "",  # the native node has no security
            "OTELCOL_HEALTH_ADDRESS": f"{LOOPBACK}:{s.port('OTELCOL_HEALTH_PORT')}",
            "OTELCOL_METRICS_HOST": LOOPBACK, "OTELCOL_METRICS_PORT": s["OTELCOL_METRICS_PORT"]}


def _otelcol_argv(s: Settings) -> list[str]:
    return [str(tools.path("otelcol")), "--config", str(s.root / "extensions" / "otel-collector" / "collector.yaml")]


def _prometheus_prepare(s: Settings) -> None:
    monitoring.write_prometheus_config(s, s.home("prometheus"))


def _prometheus_argv(s: Settings) -> list[str]:
    home, url = s.home("prometheus"), http_url(s, "PROMETHEUS_PORT")
    return [str(tools.path("prometheus")), f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}", "--storage.tsdb.retention.time=7d",
            "--storage.tsdb.retention.size=1GB", f"--web.listen-address={LOOPBACK}:{s.port('PROMETHEUS_PORT')}",
            f"--web.external-url={url}"]


def _alertmanager_prepare(s: Settings) -> None:
    monitoring.render_alertmanager(s, s.home("alertmanager") / "config")


def _alertmanager_argv(s: Settings) -> list[str]:
    home, url = s.home("alertmanager"), http_url(s, "ALERTMANAGER_PORT")
    return [str(tools.path("alertmanager")), f"--config.file={home / 'config' / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}", f"--web.listen-address={LOOPBACK}:{s.port('ALERTMANAGER_PORT')}",
            f"--web.external-url={url}",
            "--cluster.listen-address="]  # one instance: no gossip listener (its default binds 0.0.0.0:9094)


def service_env(s: Settings) -> dict[str, str]:
    """The environment of both the app and the worker."""
    return {
        "DATABASE_URL": pg.dsn(s["POSTGRES_PASSWORD"], s.port("POSTGRES_PORT")),
        "REDIS_URL": redis_url(s, 0),
        "CELERY_BROKER_URL": redis_url(s, 1),
        "ADMIN_TOKEN": s["ADMIN_TOKEN"],
        "ALERT_WEBHOOK_URL": monitoring.webhook_url(s),
        "ALERT_EMAIL_TO": s["ALERT_EMAIL_TO"],
        "SMTP_HOST": LOOPBACK,
        "SMTP_PORT": s["SMTP_PORT"],
        "LOG_FILE": str(app_log_file(s)),  # one JSON log for every process of the app and the worker
        **{key: s[key] for key in _PASSED_TO_SERVICE},
        # Traces to the native Jaeger, exported within SANDBOX_SPAN_EXPORT_DELAY_MS (the SDK waits 5 s).
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": http_url(s, "JAEGER_OTLP_HTTP_PORT"),
        "OTEL_BSP_SCHEDULE_DELAY": s["SANDBOX_SPAN_EXPORT_DELAY_MS"],
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
    return {**service_env(s), "APP_BIND": f"{LOOPBACK}:{s['APP_PORT']}", "METRICS_PORT": s["APP_METRICS_PORT"],
            "WEB_CONCURRENCY": s["WEB_CONCURRENCY"], "PROMETHEUS_MULTIPROC_DIR": str(_metrics_dir(s, "app"))}


def _app_argv(_s: Settings) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


def _worker_prepare(s: Settings) -> None:
    _metrics_dir(s, "worker").mkdir(parents=True, exist_ok=True)


def _worker_env(s: Settings) -> dict[str, str]:
    return {**service_env(s), "WORKER_METRICS_PORT": s["WORKER_METRICS_PORT"],
            "PROMETHEUS_MULTIPROC_DIR": str(_metrics_dir(s, "worker"))}


def _worker_argv(s: Settings) -> list[str]:
    # --quiet (a global option, before the command): no start-up banner, which is not a JSON record.
    return [sys.executable, "-m", "celery", "--quiet", "-A", "service.worker:celery_app", "worker",
            "--pool", "prefork", "--concurrency", s["WORKER_CONCURRENCY"], "--without-gossip", "--without-mingle",
            "--hostname", WORKER_NODE]


COMPONENTS: tuple[Component, ...] = (
    Component("postgres", "PostgreSQL", PostgresRunner(_PG_TUNING), _postgres_health, _postgres_endpoints,
              ports=("POSTGRES_PORT",)),
    Component("redis", "Redis", Spawned(_redis_argv, prepare=_redis_prepare), _redis_health, _redis_endpoints,
              ports=("REDIS_PORT",)),
    Component("elasticsearch", "Elasticsearch", es.ElasticsearchRunner(), es.health, _elasticsearch_endpoints,
              ports=("ELASTICSEARCH_PORT", "ELASTICSEARCH_TRANSPORT_PORT"), install=es.install, setup=es.provision),
    # After Elasticsearch's setup (the index template) and before the app: the app's first lines are
    # shipped too, into indices that have the template's mapping.
    Component("otelcol", "log shipper (OpenTelemetry Collector)", Spawned(_otelcol_argv, _otelcol_env),
              _otelcol_health, _otelcol_endpoints, ports=("OTELCOL_HEALTH_PORT", "OTELCOL_METRICS_PORT"),
              install=_install_tool("otelcol")),
    Component("jaeger", "Jaeger", Spawned(_jaeger_argv, _jaeger_env), _jaeger_health, _jaeger_endpoints,
              ports=("JAEGER_UI_PORT", "JAEGER_QUERY_GRPC_PORT", "JAEGER_OTLP_GRPC_PORT", "JAEGER_OTLP_HTTP_PORT",
                     "JAEGER_HEALTH_PORT", "JAEGER_METRICS_PORT"), install=_install_tool("jaeger")),
    Component("mailpit", "Mailpit", Spawned(_mailpit_argv, _mailpit_env, prepare=_mailpit_prepare), _mailpit_health,
              _mailpit_endpoints, ports=("MAILPIT_UI_PORT", "SMTP_PORT"), install=_install_tool("mailpit")),
    Component("webhook_sink", "webhook sink", Spawned(_sink_argv), _sink_health, _sink_endpoints,
              ports=("WEBHOOK_SINK_PORT",)),
    Component("app", "app (gunicorn)", Spawned(_app_argv, _app_env, _app_dir, _app_prepare), _app_health,
              _app_endpoints, ports=("APP_PORT", "APP_METRICS_PORT")),
    Component("worker", "Celery worker", Spawned(_worker_argv, _worker_env, _app_dir, _worker_prepare),
              _worker_health, _worker_endpoints, ports=("WORKER_METRICS_PORT",)),
    Component("alertmanager", "Alertmanager", Spawned(_alertmanager_argv, prepare=_alertmanager_prepare),
              _alertmanager_health, _alertmanager_endpoints, ports=("ALERTMANAGER_PORT",),
              install=_install_tool("alertmanager")),
    Component("prometheus", "Prometheus", Spawned(_prometheus_argv, prepare=_prometheus_prepare), _prometheus_health,
              _prometheus_endpoints, ports=("PROMETHEUS_PORT",), install=_install_tool("prometheus")),
    # Only in the compose stack:
    Component("filebeat", "Filebeat", docker_only=True),
    Component("logstash", "Logstash", docker_only=True),
    Component("kibana", "Kibana", docker_only=True),
    Component("grafana", "Grafana", docker_only=True),
)


def native() -> list[Component]:
    """The components that run natively, in start order."""
    return [c for c in COMPONENTS if c.runner is not None]


def docker_only() -> list[Component]:
    return [c for c in COMPONENTS if c.docker_only]


def later() -> list[Component]:
    """Components that are not native yet but will be."""
    return [c for c in COMPONENTS if c.runner is None and not c.docker_only]

