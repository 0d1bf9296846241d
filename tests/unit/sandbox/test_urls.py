"""One table of URLs for both modes, and endpoints.json, where a running sandbox records them."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from sandbox import urls
from sandbox.components import native
from sandbox.env import ROOT, Settings, load_settings

SECRETS = {"POSTGRES_PASSWORD": "p" * 32, "REDIS_PASSWORD": "r/" * 16, "ADMIN_TOKEN": "t" * 32,
           "ELASTIC_PASSWORD": "e" * 32, "GRAFANA_ADMIN_PASSWORD": "g" * 32}


def _settings(tmp_path: Path) -> Settings:
    return load_settings(environ={"SANDBOX_DIR": str(tmp_path / "state"), "SANDBOX_ENV_FILE": str(tmp_path / ".env"),
                                  **SECRETS})


def _native(s: Settings) -> dict[str, urls.Endpoint]:
    return {e.key: e for e in urls.native_endpoints(s, [c.name for c in native()])}


def _compose(s: Settings) -> dict[str, urls.Endpoint]:
    return {e.key: e for _service, e in urls.compose_endpoints(s)}


def test_an_address_in_both_modes_has_one_label_and_one_url_but_elasticsearch(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    natively, in_compose = _native(s), _compose(s)
    both = set(natively) & set(in_compose)
    assert {"app", "postgres", "redis", "webhook_sink", "mailpit", "smtp", "prometheus", "jaeger"} <= both
    assert all(natively[key].label == in_compose[key].label for key in both)
    assert [key for key in sorted(both) if natively[key].url != in_compose[key].url] == ["elasticsearch"]
    assert in_compose["elasticsearch"].url == f"http://elastic:{'e' * 32}@127.0.0.1:9200"  # no security natively


def test_the_url_table_masks_passwords_and_points_where_a_person_can_look(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    natively, in_compose = _native(s), _compose(s)
    assert natively["redis"].shown == in_compose["redis"].shown == "redis://:***@127.0.0.1:6379/0"
    assert natively["redis"].url == "redis://:r%2Fr%2F" + "r%2F" * 14 + "@127.0.0.1:6379/0"
    assert in_compose["grafana"].shown == "http://admin:***@127.0.0.1:3000"
    # Both builds of Prometheus and Mailpit have their web UIs; Jaeger's has none natively.
    assert natively["prometheus"].shown == in_compose["prometheus"].shown == "http://127.0.0.1:9090"
    assert natively["mailpit"].shown == in_compose["mailpit"].shown == "http://127.0.0.1:8025"
    assert natively["jaeger"].shown.startswith("http://127.0.0.1:16686/api/services (HTTP API; no web UI natively")
    assert in_compose["jaeger"].shown == "http://127.0.0.1:16686"
    assert natively["webhook_sink"].shown == in_compose["webhook_sink"].shown == "http://127.0.0.1:9099/messages"


def test_every_row_names_a_real_component_or_service() -> None:
    services = set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    components = {c.name for c in native()}
    assert {a.service for a in urls.ADDRESSES if a.service is not None} <= services
    assert {a.component for a in urls.ADDRESSES if a.component is not None} <= components
    assert all(a.component is not None or a.service is not None for a in urls.ADDRESSES)


def test_a_native_component_maps_to_its_compose_service() -> None:
    assert urls.compose_service("webhook_sink") == "webhook-sink"
    assert urls.compose_service("postgres") == "postgres"
    assert urls.compose_service("otelcol") == "otelcol"  # no row says otherwise: the name itself


def test_endpoints_json_is_private_and_says_the_mode(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert urls.read_endpoints(s) == {}
    assert urls.recorded_mode(s) is None
    s.state_dir.mkdir(parents=True)
    urls.write_endpoints(s, {"mode": "native", "redis": "redis://:secret@127.0.0.1:6379/0"})
    assert stat.S_IMODE(urls.endpoints_file(s).stat().st_mode) == 0o600  # it holds passwords
    assert urls.recorded_mode(s) == "native"
    urls.endpoints_file(s).write_text("[1, 2]")  # not a record at all
    assert urls.recorded_mode(s) is None


def test_try_this_points_each_mode_where_it_can_look(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    native_lines, compose_lines = urls.try_this(s, native=True), urls.try_this(s, native=False)
    assert native_lines[:3] == compose_lines[:3]  # the same two commands in both modes
    assert f"grep {urls.TRY_REQUEST_ID} {s.logs_dir}/app.jsonl" in native_lines[3]
    assert "/api/traces?service=episodes-api" in native_lines[3]  # natively Jaeger has no UI
    assert f"Kibana, data view app-logs-*, request_id : {urls.TRY_REQUEST_ID}" in compose_lines[3]
    assert "/search?service=episodes-api" in compose_lines[3]
