"""The compose stack end to end: one request followed through its log document and its trace; a line
that is not JSON kept and tagged; the provisioned index template, lifecycle policy, least-privilege
users, Kibana data view and Grafana data sources and dashboards; an injected error burst that fires
HighErrorRate, reaches the webhook sink and Mailpit, and resolves; Logstash's and Filebeat's own
config tests.

Docker only (see conftest.py). The tests run in file order: the traffic of the earlier ones feeds
the dashboards' queries.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack, wait_for

REPO = Path(__file__).resolve().parents[2]
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
GRAFANA_DATASOURCES = ("prometheus", "elasticsearch", "jaeger")
# HighErrorRate has `for: 5m` over a 5m rate; Alertmanager waits 30s, then re-notifies (the resolved
# message too) every 5m: firing takes about 6 minutes, resolving up to about 11 more.
FIRE_TIMEOUT = 12 * 60
RESOLVE_TIMEOUT = 20 * 60


def _load_provision() -> ModuleType:
    """setup/provision.py, for the names it provisions (template, policy, users): one source of truth.
    setup/ is a folder of scripts, not a package: loaded under a name of its own."""
    spec = importlib.util.spec_from_file_location("e2e_setup_provision", REPO / "setup" / "provision.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


provision = _load_provision()


def _new_request_id() -> str:
    return f"e2e-{uuid.uuid4().hex}"


def _admin(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.settings['ADMIN_TOKEN']}"}


def _set_chaos(stack: Stack, **knobs: float) -> None:
    response = requests.put(f"{stack.url('app')}/admin/chaos", json=knobs, headers=_admin(stack), timeout=10)
    response.raise_for_status()


@pytest.fixture(scope="module")
def episode_id(stack: Stack) -> int:
    response = requests.post(f"{stack.url('app')}/api/episodes", timeout=10, headers={"X-User-ID": "e2e-user"},
                             json={"title": "E2E", "script": "INT. LAB - DAY\n\nALICE\nHand me the [scope].\n"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


# --- one request through logs and traces ---------------------------------------------------------


@pytest.fixture(scope="module")
def traced_request(stack: Stack, episode_id: int) -> str:
    request_id = _new_request_id()
    response = requests.post(f"{stack.url('app')}/api/episodes/{episode_id}/extract", timeout=30,
                             headers={"X-Request-ID": request_id, "X-User-ID": "e2e-user"})
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == request_id
    return request_id


def test_the_request_is_in_elasticsearch_with_its_trace_id(stack: Stack, traced_request: str) -> None:
    def search() -> list[dict[str, Any]]:
        response = requests.post(f"{stack.url('elasticsearch')}/app-logs-*/_search", auth=stack.auth["elasticsearch"],
                                 timeout=10, json={"query": {"bool": {"filter": [
                                     {"term": {"request_id": traced_request}}, {"term": {"event": "api_access"}}]}}})
        response.raise_for_status()
        return response.json()["hits"]["hits"]

    hits = wait_for(f"the access record of {traced_request} in Elasticsearch", search, timeout=180)
    document = hits[0]["_source"]
    assert document["status_code"] == 200
    assert document["endpoint"] == "/api/episodes/<id:episode_id>/extract"
    assert TRACE_ID.match(document["trace_id"]), document
    assert hits[0]["_index"].startswith("app-logs-")


def test_the_trace_of_that_request_is_in_jaeger(stack: Stack, traced_request: str) -> None:
    def find_trace_id() -> str:
        response = requests.post(f"{stack.url('elasticsearch')}/app-logs-*/_search", auth=stack.auth["elasticsearch"],
                                 timeout=10, json={"query": {"term": {"request_id": traced_request}}, "size": 1})
        return response.json()["hits"]["hits"][0]["_source"]["trace_id"]

    trace_id = wait_for("the request's trace id in Elasticsearch", find_trace_id, timeout=180)

    def trace() -> list[dict[str, Any]]:
        response = requests.get(f"{stack.url('jaeger')}/api/traces/{trace_id}", timeout=10)
        return response.json()["data"] if response.status_code == 200 else []

    data = wait_for(f"trace {trace_id} in Jaeger", trace, timeout=120)
    spans = data[0]["spans"]
    services = {process["serviceName"] for process in data[0]["processes"].values()}
    assert "episodes-api" in services
    operations = {span["operationName"] for span in spans}
    assert {"extract_assets", "ai_call"} <= operations, operations
    tags = {(tag["key"], tag["value"]) for span in spans for tag in span["tags"]}
    assert ("request.id", traced_request) in tags


def test_a_line_that_is_not_json_is_indexed_and_tagged_not_dropped(stack: Stack) -> None:
    """A line the app did not write (a crash dump, a stray print) travels Filebeat -> Logstash ->
    Elasticsearch like any record: raw text in `message`, tag `unparsable_line`, Filebeat's decoding
    error under `log_parse_error` (so that `error` keeps meaning the app's exception)."""
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


def test_the_index_template_and_the_lifecycle_policy_are_installed_and_used(stack: Stack) -> None:
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
def test_the_service_users_are_refused_beyond_their_role(stack: Stack, user: str, method: str, path: str,
                                                         body: dict[str, Any]) -> None:
    password = stack.settings[provision.USERS[user]]
    response = requests.request(method, f"{stack.url('elasticsearch')}{path}", auth=(user, password),
                                json=body, timeout=10)
    # 403, not 401: the user exists with this password (setup made it) and its role says no.
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "security_exception"


def test_kibana_has_the_app_logs_data_view(stack: Stack) -> None:
    response = requests.get(f"{stack.url('kibana')}/api/data_views", timeout=30,
                            auth=("elastic", stack.settings["ELASTIC_PASSWORD"]))
    response.raise_for_status()
    titles = {view["title"] for view in response.json()["data_view"]}
    assert "app-logs-*" in titles


@pytest.mark.parametrize("uid", GRAFANA_DATASOURCES)
def test_grafana_datasources_are_healthy(stack: Stack, uid: str) -> None:
    def health() -> dict[str, Any]:
        response = requests.get(f"{stack.url('grafana')}/api/datasources/uid/{uid}/health",
                                auth=stack.auth["grafana"], timeout=30)
        body = response.json()
        return body if response.status_code == 200 and body.get("status") == "OK" else {}

    wait_for(f"Grafana data source {uid} healthy", health, timeout=120)


def test_the_metrics_ports_are_not_reachable_from_the_host(stack: Stack) -> None:
    for key in ("APP_METRICS_PORT", "WORKER_METRICS_PORT"):
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex(("127.0.0.1", stack.settings.port(key))) != 0, f"{key} answers on the host"


def test_logstash_config_test_passes(stack: Stack) -> None:
    # The check builds the pipeline, which opens its persistent queue: the running Logstash holds that
    # queue's lock in the shared logstash-data volume, so the check gets a scratch data path.
    done = stack.compose("run", "--rm", "--no-deps", "logstash", "--config.test_and_exit",
                         "--path.data=/tmp/config-test", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Configuration OK" in done.stdout + done.stderr


def test_filebeat_config_test_passes(stack: Stack) -> None:
    # The image's entrypoint passes a Filebeat subcommand (`test`) to filebeat; the mounted
    # filebeat.yml belongs to the host's user, hence --strict.perms=false as in the service.
    done = stack.compose("run", "--rm", "--no-deps", "filebeat", "test", "config", "--strict.perms=false",
                         timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Config OK" in done.stdout + done.stderr


# --- an error burst: the alert fires, is delivered, and resolves -----------------------------------


@pytest.fixture(scope="module")
def steady_traffic(stack: Stack, episode_id: int) -> Iterator[None]:
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


def _alert_messages(stack: Stack) -> list[str]:
    response = requests.get(f"{stack.url('webhook_sink')}/messages", timeout=10)
    titles = []
    for message in response.json()["messages"]:
        for attachment in (message["body"] or {}).get("attachments", []):
            titles.append(attachment.get("title", ""))
    return titles


def _mails(stack: Stack, subject_part: str) -> list[str]:
    response = requests.get(f"{stack.url('mailpit')}/api/v1/messages", timeout=10)
    response.raise_for_status()
    return [m["Subject"] for m in response.json()["messages"] if subject_part in m["Subject"]]


@pytest.mark.timeout(FIRE_TIMEOUT + RESOLVE_TIMEOUT + 300)
def test_an_error_burst_fires_high_error_rate_which_is_delivered_and_resolves(
    stack: Stack, steady_traffic: None
) -> None:
    requests.delete(f"{stack.url('webhook_sink')}/messages", timeout=10)
    _set_chaos(stack, error_rate=0.5)
    try:
        def firing_in_alertmanager() -> list[dict[str, Any]]:
            response = requests.get(f"{stack.url('alertmanager')}/api/v2/alerts", timeout=10,
                                    params={"filter": 'alertname="HighErrorRate"', "active": "true"})
            return [a for a in response.json() if a["labels"].get("severity") == "critical"]

        wait_for("HighErrorRate (critical) active in Alertmanager", firing_in_alertmanager, timeout=FIRE_TIMEOUT)
        wait_for("the firing notification at the webhook sink",
                 lambda: [t for t in _alert_messages(stack) if t.startswith("[FIRING") and "HighErrorRate" in t],
                 timeout=180)
        wait_for("the firing mail in Mailpit", lambda: _mails(stack, "HighErrorRate") and [
            s for s in _mails(stack, "HighErrorRate") if s.startswith("[FIRING")], timeout=180)
    finally:
        _set_chaos(stack)  # PUT {}: every knob back to its default
    wait_for("the resolved notification at the webhook sink",
             lambda: [t for t in _alert_messages(stack) if t.startswith("[RESOLVED]") and "HighErrorRate" in t],
             timeout=RESOLVE_TIMEOUT, interval=15)
    wait_for("the resolved mail in Mailpit",
             lambda: [s for s in _mails(stack, "HighErrorRate") if s.startswith("[RESOLVED]")], timeout=300)


# --- dashboards: every Prometheus query of every panel has data ------------------------------------


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows hold their collapsed panels


def _as_query(expr: str) -> str:
    """Dashboard variables (`$endpoint`) match everything; Grafana's own ($__rate_interval) stay."""
    return re.sub(r"\$\{?(?!__)\w+\}?", ".*", expr)


def _exercise_failure_paths(stack: Stack, episode_id: int, seconds: float = 90) -> None:
    """AI failures and slow queries for a while, so that their series exist (a counter shows up only
    once it has counted something); errors came from the burst above."""
    _set_chaos(stack, ai_failure_rate=0.5, slow_query_ms=150)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            requests.post(f"{stack.url('app')}/api/episodes/{episode_id}/extract", timeout=30)
            requests.post(f"{stack.url('app')}/api/episodes/{episode_id}/extract-async", timeout=30)
            requests.get(f"{stack.url('app')}/api/episodes", timeout=30)
            time.sleep(0.5)
    finally:
        _set_chaos(stack)


@pytest.mark.timeout(1200)
def test_every_dashboard_panel_query_returns_data(stack: Stack, steady_traffic: None, episode_id: int) -> None:
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
