"""The table of components: start order, ports, the Go tools, endpoints and the app's environment natively."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox import components
from sandbox.components import native
from sandbox.env import ROOT, Settings, load_settings, parse_env
from sandbox.urls import native_endpoints

EXAMPLE = parse_env((ROOT / ".env.example").read_text())


def _settings(tmp_path: Path) -> Settings:
    return load_settings(environ={"SANDBOX_DIR": str(tmp_path / "state"), "SANDBOX_ENV_FILE": str(tmp_path / ".env"),
                                  "POSTGRES_PASSWORD": "p" * 32, "REDIS_PASSWORD": "r" * 32, "ADMIN_TOKEN": "t" * 32})


def test_the_start_order_puts_each_component_after_what_it_needs() -> None:
    # The log shipper after Elasticsearch's setup (the index template) and before the app's first line.
    assert [c.name for c in native()] == ["postgres", "redis", "elasticsearch", "otelcol", "jaeger", "mailpit",
                                          "webhook_sink", "app", "worker", "alertmanager", "prometheus"]
    assert all(c.health is not None for c in native())
    assert [c.name for c in native() if c.setup is not None] == ["elasticsearch"]


def test_every_port_is_an_env_setting_and_no_two_components_share_one() -> None:
    keys = [key for c in native() for key in c.ports]
    assert len(keys) == len(set(keys))
    assert all(key in EXAMPLE for key in keys)
    defaults = [EXAMPLE[key] for key in keys]
    assert len(defaults) == len(set(defaults))


def test_endpoints_have_the_keys_tests_and_tools_read(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    endpoints = {e.key: e.url for e in native_endpoints(s, [c.name for c in native()])}
    assert {"app", "metrics", "worker_metrics", "postgres", "redis", "webhook_sink", "smtp", "mailpit", "prometheus",
            "alertmanager", "jaeger", "jaeger_otlp", "elasticsearch", "otelcol_metrics"} == set(endpoints)
    assert endpoints["jaeger"] == f"http://127.0.0.1:{EXAMPLE['JAEGER_UI_PORT']}"
    assert endpoints["smtp"] == f"127.0.0.1:{EXAMPLE['SMTP_PORT']}"
    assert components.app_log_file(s) == (tmp_path / "state" / "logs" / "app.jsonl")


def test_the_app_traces_to_jaeger_and_mails_to_mailpit(tmp_path: Path) -> None:
    env = components.service_env(_settings(tmp_path))
    assert env["OTEL_SDK_DISABLED"] == "false"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://127.0.0.1:{EXAMPLE['JAEGER_OTLP_HTTP_PORT']}"
    assert env["OTEL_BSP_SCHEDULE_DELAY"] == EXAMPLE["SANDBOX_SPAN_EXPORT_DELAY_MS"]
    assert (env["SMTP_HOST"], env["SMTP_PORT"]) == ("127.0.0.1", EXAMPLE["SMTP_PORT"])
    assert env["ALERT_WEBHOOK_URL"] == f"http://127.0.0.1:{EXAMPLE['WEBHOOK_SINK_PORT']}/hook"
    assert env["ALERT_EMAIL_TO"] == EXAMPLE["ALERT_EMAIL_TO"]


def test_jaeger_gets_every_listener_of_its_config_on_loopback(tmp_path: Path) -> None:
    config = (ROOT / "jaeger" / "config.yaml").read_text()
    env = components._jaeger_env(_settings(tmp_path))
    assert env["JAEGER_LISTEN_HOST"] == "127.0.0.1"
    variables = {name for name in env if name != "JAEGER_LISTEN_HOST"}
    assert variables == set(re.findall(r"\$\{env:(JAEGER_\w+_PORT)", config))


def test_the_apps_alert_spool_is_in_its_state_apart_from_the_metrics_wiped_at_each_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    app = next(c for c in components.COMPONENTS if c.name == "app")
    env = app.runner.env(settings)
    spool, metrics = Path(env["ALERT_SPOOL_DIR"]), Path(env["PROMETHEUS_MULTIPROC_DIR"])
    assert spool.is_relative_to(settings.state_dir) and not spool.is_relative_to(metrics)
