"""The sandbox's settings: ``.env.example`` for defaults, ``.env`` for this machine, then the
process environment (as with docker compose, a variable set in the shell wins over the file).

``.env`` is created from ``.env.example`` on the first ``up``, with every empty ``*_PASSWORD`` and
``*_TOKEN`` and ``*_KEY`` filled with a fresh random secret, mode 0600; an existing ``.env`` is never written.
``SANDBOX_ENV_FILE``, read from the environment only, names another ``.env`` (tests use it, with
``SANDBOX_DIR`` and the ports, to run a sandbox of their own beside the user's).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

ROOT = Path(__file__).resolve().parents[1]
SECRET_SUFFIXES = ("_PASSWORD", "_TOKEN", "_KEY")
_EMPTY_SECRET = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*(?:_PASSWORD|_TOKEN|_KEY))=[ \t]*$", re.MULTILINE)
_T = TypeVar("_T")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def fill_secrets(text: str, make_secret: Callable[[], str] = new_secret) -> str:
    """``text`` with every empty ``*_PASSWORD=`` / ``*_TOKEN=`` line given a value; the rest kept as is."""
    return _EMPTY_SECRET.sub(lambda match: f"{match['key']}={make_secret()}", text)


def create_env_file(example: Path, target: Path) -> bool:
    """Write ``target`` from ``example`` with fresh secrets, mode 0600. False when ``target`` exists:
    it is never overwritten (O_EXCL, so not even by a concurrent run)."""
    text = fill_secrets(example.read_text())
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask
        file.write(text)
    return True


def parse_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments skipped, matching outer quotes removed."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def env_file_path(root: Path = ROOT, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("SANDBOX_ENV_FILE") or root / ".env")


class _Key(Generic[_T]):
    """A setting read as a typed attribute of ``Settings``: its key, parse and default written once.
    Without a default the key must have a value (.env.example gives every key one, or leaves a
    secret empty for ``make up`` to fill)."""

    def __init__(self, key: str, parse: Callable[[str], _T], default: str | None = None) -> None:
        self.key = key
        self._parse = parse
        self._default = default

    def __get__(self, settings: Settings, owner: type[Settings] | None = None) -> _T:
        raw = settings[self.key] if self._default is None else settings.get(self.key, self._default)
        return self._parse(raw)


@dataclass(frozen=True)
class Settings:
    """Merged settings, and where the sandbox keeps its state."""

    values: Mapping[str, str]
    root: Path
    env_file: Path

    # Seconds each native component gets to become healthy.
    start_timeout = _Key("SANDBOX_START_TIMEOUT", float, "180")
    # The sandbox's shortcuts (README: The sandbox's shortcuts), as .env writes them.
    scrape_interval = _Key("SANDBOX_SCRAPE_INTERVAL", str)
    alert_for = _Key("SANDBOX_ALERT_FOR", str)
    span_export_delay_ms = _Key("SANDBOX_SPAN_EXPORT_DELAY_MS", str)
    alert_group_wait = _Key("SANDBOX_ALERT_GROUP_WAIT", str)
    alert_group_interval = _Key("SANDBOX_ALERT_GROUP_INTERVAL", str)
    alert_email_to = _Key("ALERT_EMAIL_TO", str)
    # "" when unset: natively, the newest PostgreSQL installed.
    postgres_version = _Key("POSTGRES_VERSION", str, "")
    elastic_version = _Key("ELASTIC_VERSION", str)

    postgres_password = _Key("POSTGRES_PASSWORD", str)
    redis_password = _Key("REDIS_PASSWORD", str)
    elastic_password = _Key("ELASTIC_PASSWORD", str)
    grafana_admin_password = _Key("GRAFANA_ADMIN_PASSWORD", str)
    admin_token = _Key("ADMIN_TOKEN", str)

    app_port = _Key("APP_PORT", int)
    app_metrics_port = _Key("APP_METRICS_PORT", int)
    worker_metrics_port = _Key("WORKER_METRICS_PORT", int)
    postgres_port = _Key("POSTGRES_PORT", int)
    redis_port = _Key("REDIS_PORT", int)
    webhook_sink_port = _Key("WEBHOOK_SINK_PORT", int)
    smtp_port = _Key("SMTP_PORT", int)
    mailpit_ui_port = _Key("MAILPIT_UI_PORT", int)
    elasticsearch_port = _Key("ELASTICSEARCH_PORT", int)
    elasticsearch_transport_port = _Key("ELASTICSEARCH_TRANSPORT_PORT", int)
    kibana_port = _Key("KIBANA_PORT", int)
    grafana_port = _Key("GRAFANA_PORT", int)
    prometheus_port = _Key("PROMETHEUS_PORT", int)
    alertmanager_port = _Key("ALERTMANAGER_PORT", int)
    jaeger_ui_port = _Key("JAEGER_UI_PORT", int)
    jaeger_otlp_http_port = _Key("JAEGER_OTLP_HTTP_PORT", int)
    jaeger_health_port = _Key("JAEGER_HEALTH_PORT", int)
    otelcol_health_port = _Key("OTELCOL_HEALTH_PORT", int)
    otelcol_metrics_port = _Key("OTELCOL_METRICS_PORT", int)
    locust_port = _Key("LOCUST_PORT", int)

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key) or default

    def port(self, key: str) -> int:
        """The port of ``key`` (one of ``Component.ports``, which name .env keys)."""
        return int(self.values[key])

    @property
    def state_dir(self) -> Path:
        return self.root / self.get("SANDBOX_DIR", ".sandbox")  # an absolute SANDBOX_DIR replaces root

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def log(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def pidfile(self, component: str) -> Path:
        return self.state_dir / "run" / f"{component}.pid"

    def home(self, component: str) -> Path:
        return self.state_dir / component

    def missing_secrets(self) -> list[str]:
        """Secret keys of .env.example that have no value (say, a hand-written .env lacks them)."""
        return [key for key, value in self.values.items() if key.endswith(SECRET_SUFFIXES) and not value]


def load_settings(root: Path = ROOT, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults from ``.env.example``, then ``.env`` (if there is one), then the environment."""
    env = os.environ if environ is None else environ
    env_file = env_file_path(root, env)
    values = parse_env((root / ".env.example").read_text())
    if env_file.is_file():
        values.update(parse_env(env_file.read_text()))
    values.update({key: env[key] for key in values if env.get(key)})
    return Settings(values, root, env_file)
