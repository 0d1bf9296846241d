"""Every URL the sandbox offers, in either mode: one table (``ADDRESSES``) from which the native and
the compose summaries and ``endpoints.json`` are made, and that file itself, where a running sandbox
records its mode and its URLs with their credentials (mode 0600), for ``python -m sandbox``, the
tests and tools.

A row names the native component that serves it and the compose service that publishes it (None
where a mode has none). What differs between the modes is in the row: natively the Go builds have
no web UI, so their rows point at an API page (``native_suffix``), and Elasticsearch has no security.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sandbox.engines import postgres as pg
from sandbox.env import Settings
from sandbox.net import LOOPBACK


@dataclass(frozen=True)
class Endpoint:
    key: str  # its name in endpoints.json
    label: str  # its row in the URL table
    url: str  # with credentials: endpoints.json only
    shown: str  # in the URL table: credentials masked, or the page worth opening


@dataclass(frozen=True)
class Address:
    """One row of the table: an address and where it is offered."""

    key: str
    label: str
    url: Callable[[Settings], str]  # with credentials, where it needs them
    component: str | None = None  # the native component that serves it; None: compose only
    service: str | None = None  # the compose service that publishes it; None: native only
    suffix: str = ""  # after the URL in the URL table: the page worth opening
    native_suffix: str | None = None  # natively instead of ``suffix``
    secret: Callable[[Settings], str] | None = None  # the password in ``url``, masked in the URL table

    def endpoint(self, s: Settings, *, native: bool) -> Endpoint:
        url = self.url(s)
        shown = masked(url, self.secret(s)) if self.secret is not None else url
        suffix = self.native_suffix if native and self.native_suffix is not None else self.suffix
        return Endpoint(self.key, self.label, url, shown + suffix)


def http_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def redis_url(s: Settings, db: int) -> str:
    return f"redis://:{quote(s.redis_password, safe='')}@{LOOPBACK}:{s.redis_port}/{db}"


def masked(url: str, password: str) -> str:
    return url.replace(f":{quote(password, safe='')}@", ":***@", 1)


def with_user(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{quote(password, safe='')}@{rest}"


def _postgres_url(s: Settings) -> str:
    return pg.dsn(s.postgres_password, s.postgres_port, scheme="postgresql")  # libpq's form: psql takes it


_NO_WEB_UI = "no web UI natively: none can be built here; the compose stack has it"

ADDRESSES: tuple[Address, ...] = (
    Address("app", "app", lambda s: http_url(s.app_port), "app", "app"),
    Address("metrics", "app metrics", lambda s: http_url(s.app_metrics_port), "app", suffix="/metrics"),
    Address("worker_metrics", "worker metrics", lambda s: http_url(s.worker_metrics_port), "worker",
            suffix="/metrics"),
    Address("postgres", "postgres", _postgres_url, "postgres", "postgres", secret=lambda s: s.postgres_password),
    Address("redis", "redis", lambda s: redis_url(s, 0), "redis", "redis", secret=lambda s: s.redis_password),
    Address("webhook_sink", "webhook sink messages", lambda s: http_url(s.webhook_sink_port), "webhook_sink",
            "webhook-sink", suffix="/messages"),
    Address("mailpit", "Mailpit", lambda s: http_url(s.mailpit_ui_port), "mailpit", "mailpit"),
    Address("smtp", "mail catcher (SMTP)", lambda s: f"{LOOPBACK}:{s.smtp_port}", "mailpit", "mailpit"),
    Address("prometheus", "Prometheus", lambda s: http_url(s.prometheus_port), "prometheus", "prometheus"),
    Address("alertmanager", "Alertmanager", lambda s: http_url(s.alertmanager_port), "alertmanager", "alertmanager"),
    Address("jaeger", "Jaeger", lambda s: http_url(s.jaeger_ui_port), "jaeger", "jaeger",
            native_suffix=f"/api/services (HTTP API; {_NO_WEB_UI})"),
    Address("jaeger_otlp", "Jaeger OTLP/HTTP", lambda s: http_url(s.jaeger_otlp_http_port), "jaeger", "jaeger",
            suffix="/v1/traces"),
    # The native node has no security; the compose one wants the elastic user.
    Address("elasticsearch", "Elasticsearch", lambda s: http_url(s.elasticsearch_port), "elasticsearch",
            suffix=" (no security: loopback only)"),
    Address("elasticsearch", "Elasticsearch",
            lambda s: with_user(http_url(s.elasticsearch_port), "elastic", s.elastic_password),
            service="elasticsearch", secret=lambda s: s.elastic_password),
    Address("otelcol_metrics", "log shipper metrics", lambda s: http_url(s.otelcol_metrics_port), "otelcol",
            suffix="/metrics"),
    Address("kibana", "Kibana (user elastic)", lambda s: http_url(s.kibana_port), service="kibana"),
    Address("grafana", "Grafana", lambda s: with_user(http_url(s.grafana_port), "admin", s.grafana_admin_password),
            service="grafana", secret=lambda s: s.grafana_admin_password),
    Address("loadgen", "Locust (load)", lambda s: http_url(s.locust_port), service="loadgen"),
)


def native_endpoints(s: Settings, components: Sequence[str]) -> list[Endpoint]:
    """The URLs of these native components, in their order."""
    return [address.endpoint(s, native=True) for name in components for address in ADDRESSES
            if address.component == name]


def compose_endpoints(s: Settings) -> list[tuple[str, Endpoint]]:
    """Every URL the compose stack publishes, with the service that serves it."""
    return [(address.service, address.endpoint(s, native=False)) for address in ADDRESSES
            if address.service is not None]


def compose_service(component: str) -> str:
    """The compose service that serves what the native ``component`` does: its own name, unless the
    table says otherwise (the webhook sink is ``webhook-sink`` in compose)."""
    return next((a.service for a in ADDRESSES if a.component == component and a.service is not None), component)


TRY_REQUEST_ID = "try-this-00000001"


def try_this(s: Settings, *, native: bool) -> list[str]:
    """Three lines that end the URL table: create an episode, extract its assets, and where the
    extraction's log record, trace and metric are to be seen (a test runs the two commands)."""
    app, prometheus = http_url(s.app_port), http_url(s.prometheus_port)
    service = s["OTEL_SERVICE_NAME"]
    where_logged = (f"grep {TRY_REQUEST_ID} {s.logs_dir}/app.jsonl" if native
                    else f"Kibana, data view app-logs-*, request_id : {TRY_REQUEST_ID}")
    where_traced = (f"{http_url(s.jaeger_ui_port)}/api/traces?service={service}" if native
                    else f"{http_url(s.jaeger_ui_port)}/search?service={service}")
    body = '{"title": "Pilot", "script": "INT. LAB - NIGHT\\nANA\\nThe [key] turns."}'
    return [
        "Try this:",
        f"  1. curl -s {app}/api/episodes -H 'Content-Type: application/json' -H 'X-User-ID: reader-1' -d '{body}'",
        f"  2. curl -s -X POST {app}/api/episodes/ID/extract -H 'X-Request-ID: {TRY_REQUEST_ID}'"
        "   (ID: the id the first answered)",
        f"  3. its log record: {where_logged}; its trace: {where_traced}; its metric: "
        f"{prometheus}/query?g0.expr=ai_calls_total",
    ]


# --- endpoints.json -------------------------------------------------------------------------------


def endpoints_file(s: Settings) -> Path:
    return s.state_dir / "endpoints.json"


def write_endpoints(s: Settings, record: dict[str, Any]) -> None:
    """Write endpoints.json readable by its owner only (it holds passwords); readers never see half a file."""
    path = endpoints_file(s)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(record, indent=2) + "\n")
    temporary.replace(path)


def read_endpoints(s: Settings) -> dict[str, Any]:
    """What the running sandbox recorded; empty when nothing runs (or the file is unreadable)."""
    try:
        record = json.loads(endpoints_file(s).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def recorded_mode(s: Settings) -> str | None:
    """The mode of the running sandbox (None when nothing was started)."""
    return read_endpoints(s).get("mode")
