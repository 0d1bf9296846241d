"""What only the compose stack has: a line that is not JSON kept and tagged by Filebeat and Logstash;
the provisioned lifecycle policy and least-privilege users; Kibana's data view; Grafana's data sources
and dashboards; the metrics ports unpublished; Logstash's and Filebeat's own config tests.

The checks both providers share (a request through logs and traces, exact metrics, alerts and
their delivery, the index template and mapping) are in the other modules of this directory. These
skip, with the reason, when the provider is the native sandbox, without starting it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from tests.support.e2e_app import set_chaos
from tests.support.e2e_stack import Provider
from tests.support.scripts import load_script
from tests.support.visibility import wait_for

REPO = Path(__file__).resolve().parents[2]
GRAFANA_DATASOURCES = ("prometheus", "elasticsearch", "jaeger")


def _load_provision() -> ModuleType:
    """setup/provision.py, for the names it provisions (template, policy, users): one source of truth."""
    return load_script(REPO / "setup" / "provision.py", "e2e_setup_provision")


provision = _load_provision()


@pytest.fixture(scope="module")
def stack(provider: Provider) -> Provider:
    """The compose provider; with the native sandbox, a skip with the reason."""
    if provider.mode != "compose":
        pytest.skip("compose only: Filebeat, Logstash, Kibana and Grafana do not run natively")
    return provider


@pytest.fixture(scope="module")
def episode_id(stack: Provider) -> int:
    response = requests.post(f"{stack.url('app')}/api/episodes", timeout=10, headers={"X-User-ID": "e2e-user"},
                             json={"title": "E2E", "script": "INT. LAB - DAY\n\nALICE\nHand me the [scope].\n"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


# --- a line that is not JSON ----------------------------------------------------------------------


def test_a_line_that_is_not_json_is_indexed_and_tagged_not_dropped(stack: Provider) -> None:
    """A line the app did not write (a crash dump, a stray print) travels Filebeat -> Logstash ->
    Elasticsearch like any record: raw text in `message`, tag `unparsable_line`, Filebeat's decoding
    error under `log_parse_error` (so that `error` keeps meaning the app's exception)."""
    stack.require("filebeat", "logstash", "elasticsearch")
    line = f"e2e-{uuid.uuid4().hex} this line is not JSON"
    # Appended inside the app's container, as its own user, to the file the app writes (LOG_FILE
    # from the container's environment), with O_APPEND and one write() like the app's own records.
    append = ("import os, sys; fd = os.open(os.environ['LOG_FILE'], os.O_WRONLY | os.O_APPEND); "
              "os.write(fd, (sys.argv[1] + '\\n').encode()); os.close(fd)")
    done = stack.compose("exec", "-T", "app", "python", "-c", append, line, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    def search() -> list[dict[str, Any]]:
        response = requests.post(f"{stack.url('elasticsearch')}/app-logs-*/_search", auth=stack.auth["elasticsearch"],
                                 timeout=10, json={"query": {"term": {"message.keyword": line}}})
        response.raise_for_status()
        return response.json()["hits"]["hits"]

    hits = wait_for("the line that is not JSON in Elasticsearch", search, timeout=180)
    assert len(hits) == 1, hits  # shipped once
    document = hits[0]["_source"]
    assert "unparsable_line" in document.get("tags", []), document
    assert document["log_parse_error"]["type"] == "json", document
    assert "error" not in document, document
    assert hits[0]["_index"].startswith("app-logs-")


# --- provisioning --------------------------------------------------------------------------------


def test_the_index_template_and_the_lifecycle_policy_are_installed_and_used(stack: Provider) -> None:
    stack.require("setup", "elasticsearch")
    es, auth = stack.url("elasticsearch"), stack.auth["elasticsearch"]
    response = requests.get(f"{es}/_index_template/{provision.INDEX_TEMPLATE}", auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    (template,) = response.json()["index_templates"]
    assert template["index_template"]["index_patterns"] == ["app-logs-*"]
    assert provision.LIFECYCLE_COMPONENT in template["index_template"]["composed_of"]

    response = requests.get(f"{es}/_ilm/policy/{provision.ILM_POLICY}", auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    assert "delete" in response.json()[provision.ILM_POLICY]["policy"]["phases"]

    # The daily indices Logstash created (the load generator's traffic makes one at once) are
    # managed by that policy: the template and its component template took effect.
    def lifecycle_names() -> dict[str, Any]:
        settings = requests.get(f"{es}/app-logs-*/_settings/index.lifecycle.name", auth=auth, timeout=10)
        settings.raise_for_status()
        return settings.json()

    for index, body in wait_for("a daily app-logs index", lifecycle_names, timeout=180).items():
        policy = body["settings"].get("index", {}).get("lifecycle", {}).get("name")
        assert policy == provision.ILM_POLICY, f"{index} is managed by {policy!r}"


@pytest.mark.parametrize(("user", "method", "path", "body"), [
    # Logstash's user adds documents and nothing else: reading them back is refused.
    ("logstash_writer", "POST", "/app-logs-*/_search", {"query": {"match_all": {}}}),
    # Grafana's user reads: writing, even into app-logs-*, is refused.
    ("grafana_reader", "POST", "/app-logs-e2e-privilege-probe/_doc", {"message": "must not be indexed"}),
])
def test_the_service_users_are_refused_beyond_their_role(stack: Provider, user: str, method: str, path: str,
                                                         body: dict[str, Any]) -> None:
    stack.require("setup", "elasticsearch")
    password = stack.settings[provision.USERS[user]]
    response = requests.request(method, f"{stack.url('elasticsearch')}{path}", auth=(user, password),
                                json=body, timeout=10)
    # 403, not 401: the user exists with this password (setup made it) and its role says no.
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "security_exception"


def test_kibana_has_the_app_logs_data_view(stack: Provider) -> None:
    stack.require("setup", "kibana")
    response = requests.get(f"{stack.url('kibana')}/api/data_views", timeout=30,
                            auth=("elastic", stack.settings["ELASTIC_PASSWORD"]))
    response.raise_for_status()
    titles = {view["title"] for view in response.json()["data_view"]}
    assert "app-logs-*" in titles


@pytest.fixture(scope="module")
def grafana_stack(stack: Provider) -> Provider:
    """The compose provider with Grafana (asked for before any traffic is made for it)."""
    stack.require("grafana")
    return stack


@pytest.mark.parametrize("uid", GRAFANA_DATASOURCES)
def test_grafana_datasources_are_healthy(grafana_stack: Provider, uid: str) -> None:
    stack = grafana_stack
    def health() -> dict[str, Any]:
        response = requests.get(f"{stack.url('grafana')}/api/datasources/uid/{uid}/health",
                                auth=stack.auth["grafana"], timeout=30)
        body = response.json()
        return body if response.status_code == 200 and body.get("status") == "OK" else {}

    wait_for(f"Grafana data source {uid} healthy", health, timeout=120)


def test_the_metrics_ports_are_not_reachable_from_the_host(stack: Provider) -> None:
    for key in ("APP_METRICS_PORT", "WORKER_METRICS_PORT"):
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex(("127.0.0.1", stack.settings.port(key))) != 0, f"{key} answers on the host"


def test_logstash_config_test_passes(stack: Provider) -> None:
    stack.require("logstash")
    # The check builds the pipeline, which opens its persistent queue: the running Logstash holds that
    # queue's lock in the shared logstash-data volume, so the check gets a scratch data path.
    done = stack.compose("run", "--rm", "--no-deps", "logstash", "--config.test_and_exit",
                         "--path.data=/tmp/config-test", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Configuration OK" in done.stdout + done.stderr


def test_filebeat_config_test_passes(stack: Provider) -> None:
    stack.require("filebeat")
    # The image's entrypoint passes a Filebeat subcommand (`test`) to filebeat; the mounted
    # filebeat.yml belongs to the host's user, hence --strict.perms=false as in the service.
    done = stack.compose("run", "--rm", "--no-deps", "filebeat", "test", "config", "--strict.perms=false",
                         timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Config OK" in done.stdout + done.stderr


# --- dashboards: traffic, then every Prometheus query of every panel has data -------------------------


@pytest.fixture(scope="module")
def steady_traffic(stack: Provider, episode_id: int) -> Iterator[None]:
    """About five requests a second for as long as the module runs: rates need traffic."""
    stop = threading.Event()

    def run() -> None:
        session = requests.Session()
        session.headers["X-User-ID"] = "e2e-traffic"
        paths = ["/api/episodes", f"/api/episodes/{episode_id}", f"/api/episodes/{episode_id}/assets"]
        while not stop.is_set():
            # A reset or a timeout under chaos must not end the traffic (a 5xx raises nothing).
            with contextlib.suppress(requests.RequestException):
                for path in paths:
                    session.get(f"{stack.url('app')}{path}", timeout=10)
                session.post(f"{stack.url('app')}/api/episodes/{episode_id}/extract-async", timeout=10)
            stop.wait(0.6)

    thread = threading.Thread(target=run, name="e2e-traffic", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows hold their collapsed panels


def _as_query(expr: str) -> str:
    """Dashboard variables (`$endpoint`) match everything; Grafana's own ($__rate_interval) stay."""
    return re.sub(r"\$\{?(?!__)\w+\}?", ".*", expr)


def _exercise_failure_paths(stack: Provider, episode_id: int, seconds: float = 90) -> None:
    """AI failures and slow queries for a while, so that their series exist (a counter shows up only
    once it has counted something); errors came from the burst above."""
    set_chaos(stack, ai_failure_rate=0.5, slow_query_ms=150)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            requests.post(f"{stack.url('app')}/api/episodes/{episode_id}/extract", timeout=30)
            requests.post(f"{stack.url('app')}/api/episodes/{episode_id}/extract-async", timeout=30)
            requests.get(f"{stack.url('app')}/api/episodes", timeout=30)
            time.sleep(0.5)
    finally:
        set_chaos(stack)


@pytest.mark.timeout(1200)
def test_every_dashboard_panel_query_returns_data(grafana_stack: Provider, steady_traffic: None,
                                                  episode_id: int) -> None:
    stack = grafana_stack
    _exercise_failure_paths(stack, episode_id)
    grafana, auth = stack.url("grafana"), stack.auth["grafana"]
    found = requests.get(f"{grafana}/api/search", params={"type": "dash-db"}, auth=auth, timeout=30).json()
    assert found, "no dashboards provisioned"
    queries = []
    for item in found:
        dashboard = requests.get(f"{grafana}/api/dashboards/uid/{item['uid']}", auth=auth, timeout=30).json()
        for panel in _panels(dashboard["dashboard"].get("panels", [])):
            for target in panel.get("targets", []):
                if (target.get("datasource") or panel.get("datasource") or {}).get("uid") == "prometheus" and \
                        target.get("expr"):
                    queries.append((f"{item['title']} / {panel.get('title')}", _as_query(target["expr"])))
    assert queries

    def without_data() -> list[str]:
        empty = []
        for name, expr in queries:
            response = requests.post(f"{grafana}/api/ds/query", auth=auth, timeout=60, json={
                "from": "now-30m", "to": "now",
                "queries": [{"refId": "A", "datasource": {"uid": "prometheus"}, "expr": expr,
                             "intervalMs": 15000, "maxDataPoints": 200}]})
            frames = response.json()["results"]["A"].get("frames", [])
            if not any(frame["data"]["values"] and frame["data"]["values"][0] for frame in frames):
                empty.append(f"{name}: {expr}")
        return empty

    deadline = time.monotonic() + 600
    while (empty := without_data()) and time.monotonic() < deadline:
        time.sleep(30)
    assert not empty, "panels whose query returns no data:\n" + "\n".join(empty)
