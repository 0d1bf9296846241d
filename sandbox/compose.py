"""``up``, ``down``, ``status``, ``stop <service>`` and ``start <service>`` of the compose stack
(docker-compose.yml), for ``python -m sandbox`` when a Docker engine answers.

``up`` runs ``docker compose up -d --wait`` (compose shows its progress), then writes
``.sandbox/endpoints.json`` with the same keys as the native sandbox where a component exists in
both, ``"mode": "compose"``, and the URLs of the components only compose has. The app's and the
worker's metrics ports are not published in compose (Prometheus scrapes them inside the compose
network), so ``metrics`` and ``worker_metrics`` are absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from urllib.parse import quote

from sandbox import postgres as pg
from sandbox.common import LOOPBACK
from sandbox.components import Endpoint, http_url, masked, redis_url
from sandbox.env import Settings
from sandbox.native import endpoints_file, write_private

# The host ports docker-compose.yml publishes (all on 127.0.0.1); a static test keeps this list and
# the compose file in step, `make doctor` checks that they are free.
PUBLISHED_PORTS = (
    "APP_PORT", "POSTGRES_PORT", "REDIS_PORT", "ELASTICSEARCH_PORT", "KIBANA_PORT", "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT", "WEBHOOK_SINK_PORT", "MAILPIT_UI_PORT", "SMTP_PORT", "JAEGER_UI_PORT",
    "JAEGER_OTLP_HTTP_PORT", "GRAFANA_PORT", "LOCUST_PORT",
)
# What `docker compose` needs: `up --wait` with start_interval, secrets from the environment.
MIN_COMPOSE_VERSION = (2, 24, 0)
# Long enough for a first start that builds the app image and pulls every other image.
WAIT_TIMEOUT_SECONDS = 900
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def compose_version(timeout: float = 10.0) -> tuple[int, int, int] | None:
    """The version of the compose plugin (``docker compose``), or None when there is none."""
    if shutil.which("docker") is None:
        return None
    try:
        # The docker CLI from PATH, as a user would run it.
        done = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True,  # noqa: S607
                              stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    match = _VERSION.match(done.stdout.strip()) if done.returncode == 0 else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def compose_command(s: Settings, *args: str) -> list[str]:
    """``docker compose`` for this repository's stack, with the settings' .env file."""
    return ["docker", "compose", "--project-directory", str(s.root), "--env-file", str(s.env_file), *args]


def _run(command: Sequence[str]) -> int:
    """Run with the terminal's stdout and stderr, so that compose's progress shows as it happens."""
    return subprocess.run(command, stdin=subprocess.DEVNULL, check=False).returncode  # noqa: S603 - our own argv


def up(s: Settings) -> int:
    s.state_dir.mkdir(parents=True, exist_ok=True)
    print(f"docker compose up (the first start builds the app image and pulls the others; "
          f"waiting up to {WAIT_TIMEOUT_SECONDS // 60} min for every service to be healthy) ...")
    code = _run(compose_command(s, "up", "--detach", "--wait", "--wait-timeout", str(WAIT_TIMEOUT_SECONDS)))
    if code != 0:
        print("docker compose up failed. `make ps` shows each service's state, `make logs` their output, "
              "`make doctor` checks the usual causes (vm.max_map_count, memory, ports).", file=sys.stderr)
        return code
    endpoints = compose_endpoints(s)
    write_private(endpoints_file(s), json.dumps({"mode": "compose", **{e.key: e.url for e in endpoints}}, indent=2))
    print_summary(s, endpoints)
    return 0


def down(s: Settings) -> int:
    code = _run(compose_command(s, "down"))
    if code == 0:
        endpoints_file(s).unlink(missing_ok=True)  # nothing answers at those URLs any more
        print("Stopped. The volumes (data of PostgreSQL, Elasticsearch, Prometheus, Grafana, ...) are kept: "
              "`docker compose down --volumes` removes them.")
    return code


def status(s: Settings) -> int:
    return _run(compose_command(s, "ps", "--all"))


def stop_service(s: Settings, service: str) -> int:
    """Stop one service; its container (and data) stays for ``start_service``."""
    return _run(compose_command(s, "stop", service))


def start_service(s: Settings, service: str) -> int:
    """Start one stopped service, without touching the others, and wait until it is healthy."""
    return _run(compose_command(s, "up", "--detach", "--no-deps", "--wait", "--wait-timeout",
                                str(WAIT_TIMEOUT_SECONDS), service))


def compose_endpoints(s: Settings) -> list[Endpoint]:
    """Every published URL, with credentials where the service needs them (endpoints.json only)."""
    postgres = pg.dsn(s["POSTGRES_PASSWORD"], s.port("POSTGRES_PORT"), scheme="postgresql")
    redis = redis_url(s, 0)
    elasticsearch = _with_user(http_url(s, "ELASTICSEARCH_PORT"), "elastic", s["ELASTIC_PASSWORD"])
    grafana = _with_user(http_url(s, "GRAFANA_PORT"), "admin", s["GRAFANA_ADMIN_PASSWORD"])
    sink, mailpit = http_url(s, "WEBHOOK_SINK_PORT"), http_url(s, "MAILPIT_UI_PORT")
    smtp = f"{LOOPBACK}:{s.port('SMTP_PORT')}"
    return [
        Endpoint("app", "app", http_url(s, "APP_PORT"), http_url(s, "APP_PORT")),
        Endpoint("postgres", "postgres", postgres, masked(postgres, s["POSTGRES_PASSWORD"])),
        Endpoint("redis", "redis", redis, masked(redis, s["REDIS_PASSWORD"])),
        Endpoint("webhook_sink", "webhook sink messages", sink, f"{sink}/messages"),
        Endpoint("smtp", "mail catcher (SMTP)", smtp, smtp),
        Endpoint("mailpit", "Mailpit", mailpit, mailpit),
        Endpoint("prometheus", "Prometheus", http_url(s, "PROMETHEUS_PORT"), http_url(s, "PROMETHEUS_PORT")),
        Endpoint("alertmanager", "Alertmanager", http_url(s, "ALERTMANAGER_PORT"), http_url(s, "ALERTMANAGER_PORT")),
        Endpoint("jaeger", "Jaeger", http_url(s, "JAEGER_UI_PORT"), http_url(s, "JAEGER_UI_PORT")),
        Endpoint("jaeger_otlp", "Jaeger OTLP/HTTP", http_url(s, "JAEGER_OTLP_HTTP_PORT"),
                 f"{http_url(s, 'JAEGER_OTLP_HTTP_PORT')}/v1/traces"),
        Endpoint("elasticsearch", "Elasticsearch", elasticsearch, masked(elasticsearch, s["ELASTIC_PASSWORD"])),
        Endpoint("kibana", "Kibana (user elastic)", http_url(s, "KIBANA_PORT"), http_url(s, "KIBANA_PORT")),
        Endpoint("grafana", "Grafana", grafana, masked(grafana, s["GRAFANA_ADMIN_PASSWORD"])),
        Endpoint("loadgen", "Locust (load)", http_url(s, "LOCUST_PORT"), http_url(s, "LOCUST_PORT")),
    ]


def _with_user(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{quote(password, safe='')}@{rest}"


def print_summary(s: Settings, endpoints: list[Endpoint]) -> None:
    print("\nThe sandbox runs (compose stack, published on 127.0.0.1 only):")
    width = max(len(e.label) for e in endpoints)
    for endpoint in endpoints:
        print(f"  {endpoint.label:<{width}}  {endpoint.shown}")
    print(f"  {'app metrics':<{width}}  not published: Prometheus scrapes app:9464 and worker:9465 inside the "
          "compose network (see its targets page)")
    print(f"Credentials: {s.env_file} (*_PASSWORD, ADMIN_TOKEN; Kibana and Elasticsearch: user elastic, "
          f"Grafana: user admin); the URLs with them: {endpoints_file(s)}")
    print("Logs: `make logs` (every service), Kibana's data view app-logs-*, or the app-logs volume.")

