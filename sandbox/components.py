"""The sandbox's components as data: ``COMPONENTS`` has one row per component, in start order.

A row says how the component runs natively (``runner``; None when it does not), how to tell that it
is healthy, which URLs it offers and which ports of ``.env`` it listens on. Rows without a runner
are either docker-only or arrive natively with a later issue: adding Prometheus, say, means giving
its row a runner, a health check and endpoints. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import smtplib
import socket
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sandbox import postgres as pg
from sandbox import redis_server
from sandbox.common import LOOPBACK
from sandbox.env import Settings
from sandbox.runners import PostgresRunner, Runner, Spawned

# Tracing needs a collector and none runs natively yet (Jaeger arrives with a later issue): the SDK
# stays off. This is the one place to change when it does.
TRACING_ENV = {"OTEL_SDK_DISABLED": "true"}
ALERT_EMAIL_TO = "ops@localhost"  # the mail catcher accepts any recipient
# Settings of .env handed to the app and the worker unchanged.
_PASSED_TO_SERVICE = ("OTEL_SERVICE_NAME", "DEPLOYMENT_ENVIRONMENT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
                      "SLOW_QUERY_THRESHOLD_MS")
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


@dataclass(frozen=True)
class Component:
    name: str
    title: str
    runner: Runner | None = None  # None: not run natively
    health: Callable[[Settings], None] | None = None  # raises while unhealthy
    endpoints: Callable[[Settings], list[Endpoint]] = _no_endpoints
    ports: tuple[str, ...] = ()  # .env keys of the ports it listens on
    docker_only: bool = False  # runner None and not docker_only: arrives natively with a later issue


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


def _smtp_endpoints(s: Settings) -> list[Endpoint]:
    address = f"{LOOPBACK}:{s.port('SMTP_PORT')}"  # host:port: SMTP has no URL scheme worth the name
    shown = f"{address} (SMTP, no web UI: mails are printed to {s.log('smtp')})"
    return [Endpoint("smtp", "mail catcher", address, shown)]


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


def _smtp_health(s: Settings) -> None:
    with smtplib.SMTP(LOOPBACK, s.port("SMTP_PORT"), timeout=_CHECK_TIMEOUT) as smtp:
        code, reply = smtp.noop()
        if code != 250:
            raise RuntimeError(f"SMTP NOOP answered {code} {reply!r}")


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


def _smtp_argv(s: Settings) -> list[str]:
    # A stand-in until Mailpit: accepts every mail and prints it to its log.
    return [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{LOOPBACK}:{s['SMTP_PORT']}",
            "-c", "aiosmtpd.handlers.Debugging"]


def service_env(s: Settings) -> dict[str, str]:
    """The environment of both the app and the worker."""
    return {
        "DATABASE_URL": pg.dsn(s["POSTGRES_PASSWORD"], s.port("POSTGRES_PORT")),
        "REDIS_URL": redis_url(s, 0),
        "CELERY_BROKER_URL": redis_url(s, 1),
        "ADMIN_TOKEN": s["ADMIN_TOKEN"],
        "ALERT_WEBHOOK_URL": f"{http_url(s, 'WEBHOOK_SINK_PORT')}/hook",
        "ALERT_EMAIL_TO": ALERT_EMAIL_TO,
        "SMTP_HOST": LOOPBACK,
        "SMTP_PORT": s["SMTP_PORT"],
        "LOG_FILE": str(s.logs_dir / "app.jsonl"),  # one JSON log for every process of the app and the worker
        **{key: s[key] for key in _PASSED_TO_SERVICE},
        **TRACING_ENV,
    }


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
    Component("webhook_sink", "webhook sink", Spawned(_sink_argv), _sink_health, _sink_endpoints,
              ports=("WEBHOOK_SINK_PORT",)),
    Component("smtp", "mail catcher (aiosmtpd)", Spawned(_smtp_argv), _smtp_health, _smtp_endpoints,
              ports=("SMTP_PORT",)),
    Component("app", "app (gunicorn)", Spawned(_app_argv, _app_env, _app_dir, _app_prepare), _app_health,
              _app_endpoints, ports=("APP_PORT", "APP_METRICS_PORT")),
    Component("worker", "Celery worker", Spawned(_worker_argv, _worker_env, _app_dir, _worker_prepare),
              _worker_health, _worker_endpoints, ports=("WORKER_METRICS_PORT",)),
    # Natively with a later issue:
    Component("prometheus", "Prometheus"),
    Component("alertmanager", "Alertmanager"),
    Component("jaeger", "Jaeger"),
    Component("elasticsearch", "Elasticsearch"),
    Component("mailpit", "Mailpit"),
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

