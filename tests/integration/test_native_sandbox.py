"""`python -m sandbox up|status|down` for real (what `make up`, `make status` and `make down` run).

The sandbox under test has a state directory, a .env and ports of its own (SANDBOX_DIR,
SANDBOX_ENV_FILE and every *_PORT a native component listens on, which win over .env), so it never
meets a sandbox the user runs, nor the servers of the other tests. One sandbox serves the whole
module (Elasticsearch alone takes 10-40 s to start); it is always stopped at the end.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import smtplib
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests

from sandbox import doctor
from sandbox.components import native
from sandbox.engines import processes
from sandbox.env import load_settings
from sandbox.net import free_port, port_in_use
from tests.support.logs import read_log_file

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = [component.name for component in native()]
# Every port a native component listens on, Elasticsearch's transport and Jaeger's unpublished ones included.
PORT_KEYS = tuple(key for component in native() for key in component.ports)
START_TIMEOUT = 180  # per component, inside `up` (they start side by side)
UP_TIMEOUT = 420  # all of them, and Elasticsearch's download when it is not cached yet
DOWN_TIMEOUT = 25 * len(COMPONENTS)  # at most 20 s of SIGTERM grace per component, then SIGKILL
WAIT = 30.0  # for a signal to cross the stack: a scrape, a span export, an alert's group_wait
_STATUS_LINE = re.compile(r"^(?P<name>\w+)\s+running\s+pid (?P<pid>\d+)\s+(?P<health>.*)$")
_NO_PROXY = {"http": "", "https": ""}  # loopback: never through a proxy from the environment


@dataclass
class Sandbox:
    env: dict[str, str]
    state: Path
    ports: dict[str, int]
    first_up: subprocess.CompletedProcess[str] | None = None

    def run(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sandbox", command], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def running(self) -> dict[str, tuple[int, str]]:
        """component -> (pid, health), from `status`."""
        done = self.run("status", 60)
        assert done.returncode == 0, done.stderr
        matches = (_STATUS_LINE.match(line) for line in done.stdout.splitlines())
        return {m["name"]: (int(m["pid"]), m["health"]) for m in matches if m}

    def endpoints(self) -> dict[str, str]:
        return json.loads((self.state / "endpoints.json").read_text())

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.ports[key]}"


def _get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=10, proxies=_NO_PROXY, **kwargs)


def _eventually(probe: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """``probe()``'s first truthy result within ``timeout`` seconds; fails with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s (last: {result!r})")
        time.sleep(0.5)


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _require_native_programs() -> None:
    """PostgreSQL, redis-server, Java 21+, Go or the built tools, mvn or the cached Elasticsearch."""
    check = doctor.check_native_programs()
    if check.verdict == "fail":
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so this may not skip: {check.detail}", pytrace=False)
        pytest.skip(check.detail)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    # As root, PostgreSQL and Elasticsearch run as other users, which cannot enter pytest's private temp
    # dirs: the state goes to a world-traversable directory, as .sandbox/ is inside a checkout.
    parent = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    parent.chmod(0o755)
    ports = dict(zip(PORT_KEYS, _distinct_free_ports(len(PORT_KEYS)), strict=True))
    env = {**os.environ, "SANDBOX_MODE": "native", "SANDBOX_DIR": str(parent / "state"),
           "SANDBOX_ENV_FILE": str(tmp_path_factory.mktemp("sandbox-env") / ".env"),
           "SANDBOX_START_TIMEOUT": str(START_TIMEOUT), **{key: str(port) for key, port in ports.items()}}
    try:
        _require_native_programs()
        box = Sandbox(env, parent / "state", ports)
        try:
            box.first_up = box.run("up", UP_TIMEOUT)
            yield box
        finally:
            box.run("down", DOWN_TIMEOUT)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_starts_every_component_healthy(sandbox: Sandbox) -> None:
    up = sandbox.first_up
    assert up is not None
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
    assert COMPONENTS == ["postgres", "redis", "elasticsearch", "otelcol", "jaeger", "mailpit", "webhook_sink", "app",
                          "worker", "alertmanager", "prometheus"]
    for name in COMPONENTS:
        assert re.search(rf"^{name} ready in \d+\.\ds", up.stdout, re.MULTILINE), up.stdout
    assert re.search(r"^elasticsearch set up in \d+\.\ds", up.stdout, re.MULTILINE), up.stdout
    health = {name: health for name, (_pid, health) in sandbox.running().items()}
    assert health == dict.fromkeys(COMPONENTS, "healthy")
    # The summary: URLs with masked credentials, what is docker-only.
    assert f"postgresql://app:***@127.0.0.1:{sandbox.ports['POSTGRES_PORT']}/app" in up.stdout
    assert "Docker only (compose): Filebeat, Logstash, Kibana, Grafana." in up.stdout


def test_every_listener_is_on_loopback(sandbox: Sandbox) -> None:
    pids = {member for pgid, _health in sandbox.running().values() for member in processes.group_members(pgid)}
    addresses = _listening_addresses(pids)
    ours = {port for _address, port in addresses}
    assert set(sandbox.ports.values()) <= ours, "a component does not listen where .env says"
    assert [a for a in addresses if not ipaddress.ip_address(a[0]).is_loopback and not _mapped_loopback(a[0])] == []


def test_env_file_is_created_with_private_secrets(sandbox: Sandbox) -> None:
    env_file = Path(sandbox.env["SANDBOX_ENV_FILE"])
    assert _mode(env_file) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line and line[0] != "#")
    for key in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "ADMIN_TOKEN"):
        assert len(values[key]) >= 32
        assert sandbox.first_up is not None and values[key] not in sandbox.first_up.stdout


def test_endpoints_file_has_working_urls(sandbox: Sandbox) -> None:
    assert _mode(sandbox.state / "endpoints.json") == 0o600  # it holds the passwords
    endpoints = sandbox.endpoints()
    ports = sandbox.ports
    assert endpoints["mode"] == "native"
    assert endpoints["app"] == sandbox.url("APP_PORT")
    assert endpoints["metrics"] == sandbox.url("APP_METRICS_PORT")
    assert endpoints["worker_metrics"] == sandbox.url("WORKER_METRICS_PORT")
    assert endpoints["webhook_sink"] == sandbox.url("WEBHOOK_SINK_PORT")
    assert endpoints["smtp"] == f"127.0.0.1:{ports['SMTP_PORT']}"
    assert endpoints["mailpit"] == sandbox.url("MAILPIT_UI_PORT")
    assert endpoints["prometheus"] == sandbox.url("PROMETHEUS_PORT")
    assert endpoints["alertmanager"] == sandbox.url("ALERTMANAGER_PORT")
    assert endpoints["jaeger"] == sandbox.url("JAEGER_UI_PORT")
    assert endpoints["jaeger_otlp"] == sandbox.url("JAEGER_OTLP_HTTP_PORT")
    assert endpoints["elasticsearch"] == sandbox.url("ELASTICSEARCH_PORT")
    assert endpoints["app_log_file"] == str(sandbox.state / "logs" / "app.jsonl")

    with psycopg.connect(endpoints["postgres"], connect_timeout=5) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == ("app", "app")
    assert redis.Redis.from_url(endpoints["redis"], socket_timeout=5).ping()
    assert _get(f"{endpoints['webhook_sink']}/messages").json()["messages"] == []
    with smtplib.SMTP("127.0.0.1", ports["SMTP_PORT"], timeout=5) as smtp:
        assert smtp.noop()[0] == 250
    assert "http_requests_in_flight" in _get(f"{endpoints['metrics']}/metrics").text
    assert _get(f"{endpoints['worker_metrics']}/metrics").status_code == 200
    assert _get(f"{endpoints['prometheus']}/-/ready").status_code == 200
    assert _get(f"{endpoints['alertmanager']}/-/ready").status_code == 200
    assert _get(f"{endpoints['jaeger']}/api/services").status_code == 200
    assert _get(f"{endpoints['mailpit']}/api/v1/info").json()["Version"].startswith("v")
    assert _get(f"{endpoints['elasticsearch']}/_cluster/health").json()["status"] in ("green", "yellow")


def test_episode_request_reaches_the_shared_log_file_with_its_request_id(sandbox: Sandbox) -> None:
    request_id = f"sandbox-test-{uuid.uuid4().hex}"
    response = requests.post(f"{sandbox.endpoints()['app']}/api/episodes", json={"title": "t", "script": "s"},
                             headers={"X-Request-ID": request_id}, timeout=10, proxies=_NO_PROXY)
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id

    log_file = Path(sandbox.endpoints()["app_log_file"])
    access = _eventually(lambda: [r for r in read_log_file(log_file) if r.get("event") == "api_access"
                                  and r.get("request_id") == request_id], f"an access record for {request_id}", 10)
    assert len(access) == 1
    assert access[0]["status_code"] == 201
    assert access[0]["request"]["path"] == "/api/episodes"


def test_the_try_this_lines_work_as_printed(sandbox: Sandbox) -> None:
    """The two commands at the end of `up`'s table, run by a shell as a person would paste them."""
    assert sandbox.first_up is not None
    printed = sandbox.first_up.stdout.split("Try this:\n", 1)[1].splitlines()
    create = printed[0].split("1. ", 1)[1]
    extract = printed[1].split("2. ", 1)[1].split("   (", 1)[0]
    episode = json.loads(subprocess.run(["sh", "-c", create], capture_output=True, text=True, timeout=30,
                                        check=True).stdout)
    assets = json.loads(subprocess.run(["sh", "-c", extract.replace("/ID/", f"/{episode['id']}/")],
                                       capture_output=True, text=True, timeout=30, check=True).stdout)
    assert assets["assets"], assets
    request_id = re.search(r"X-Request-ID: (\S+)'", extract)[1]
    where = printed[2]
    log_file = Path(sandbox.endpoints()["app_log_file"])
    assert f"grep {request_id} {log_file}" in where
    _eventually(lambda: [r for r in read_log_file(log_file) if r.get("request_id") == request_id],
                f"a record of {request_id}", 10)
    assert f"{sandbox.url('PROMETHEUS_PORT')}/query?g0.expr=ai_calls_total" in where


def test_a_requests_trace_reaches_jaeger(sandbox: Sandbox) -> None:
    request_id = f"sandbox-trace-{uuid.uuid4().hex}"
    endpoints = sandbox.endpoints()
    response = requests.post(f"{endpoints['app']}/api/episodes", json={"title": "t", "script": "s"},
                             headers={"X-Request-ID": request_id}, timeout=10, proxies=_NO_PROXY)
    assert response.status_code == 201, response.text

    def spans() -> list[dict[str, Any]]:
        found = _get(f"{endpoints['jaeger']}/api/traces",
                     params={"service": "episodes-api", "lookback": "1h", "limit": "100"}).json()["data"] or []
        return [span for trace in found for span in trace["spans"]
                if any(tag["key"] == "request.id" and tag["value"] == request_id for tag in span["tags"])]

    traced = _eventually(spans, f"a span with request.id {request_id} in Jaeger")
    assert traced[0]["operationName"] == "POST /api/episodes"
    # The log record of that request names the same trace.
    log_file = Path(endpoints["app_log_file"])
    access = [r for r in read_log_file(log_file)
              if r.get("request_id") == request_id and r.get("event") == "api_access"]
    assert access and access[0]["trace_id"] == traced[0]["traceID"].rjust(32, "0")


def test_prometheus_scrapes_the_stack_with_the_sandbox_settings(sandbox: Sandbox) -> None:
    prometheus = sandbox.endpoints()["prometheus"]

    every_job_up = {"app": "1", "worker": "1", "prometheus": "1", "alertmanager": "1", "jaeger": "1"}  # node: none

    def up_by_job() -> dict[str, str]:
        result = _get(f"{prometheus}/api/v1/query", params={"query": "up"}).json()["data"]["result"]
        return {series["metric"]["job"]: series["value"][1] for series in result}

    _eventually(lambda: up_by_job() == every_job_up, "every target up (app, worker, prometheus, alertmanager, jaeger)")
    assert f"127.0.0.1:{sandbox.ports['APP_METRICS_PORT']}" in _get(f"{prometheus}/api/v1/targets").text
    config = _get(f"{prometheus}/api/v1/status/config").json()["data"]["yaml"]
    interval = load_settings(environ=sandbox.env)["SANDBOX_SCRAPE_INTERVAL"]
    assert f"scrape_interval: {interval}" in config and f"evaluation_interval: {interval}" in config
    # SANDBOX_ALERT_FOR shortened HighErrorRate (both severities); the other alerts keep theirs.
    rules = _get(f"{prometheus}/api/v1/rules", params={"type": "alert"}).json()["data"]["groups"]
    durations = {(r["name"], r["labels"]["severity"]): r["duration"] for g in rules for r in g["rules"]}
    assert durations[("HighErrorRate", "critical")] == durations[("HighErrorRate", "warning")] == 30
    assert durations[("SlowResponse", "warning")] == 600
    alertmanagers = _get(f"{prometheus}/api/v1/alertmanagers").json()["data"]["activeAlertmanagers"]
    assert [a["url"] for a in alertmanagers] == [f"{sandbox.url('ALERTMANAGER_PORT')}/api/v2/alerts"]


def test_the_index_template_is_installed_in_elasticsearch(sandbox: Sandbox) -> None:
    response = _get(f"{sandbox.endpoints()['elasticsearch']}/_index_template/app-logs")
    assert response.status_code == 200, response.text
    (template,) = response.json()["index_templates"]
    assert template["index_template"]["index_patterns"] == ["app-logs-*"]
    assert "[setup] done" in (sandbox.state / "logs" / "setup.log").read_text()


def test_an_alert_reaches_the_webhook_sink_and_mailpit(sandbox: Sandbox) -> None:
    endpoints = sandbox.endpoints()
    name = f"SandboxSmoke{uuid.uuid4().hex[:8]}"
    alert = {"labels": {"alertname": name, "severity": "critical", "alertgroup": "smoke", "service": "episodes-api"},
             "annotations": {"summary": "routing smoke test", "description": "posted by the test",
                             "runbook_url": "prometheus/runbooks.md", "dashboard_url": "/d/episodes-api"},
             "startsAt": datetime.now(UTC).isoformat()}
    response = requests.post(f"{endpoints['alertmanager']}/api/v2/alerts", json=[alert], timeout=10,
                             proxies=_NO_PROXY)
    assert response.status_code == 200, response.text

    def posted() -> list[dict[str, Any]]:
        return [m for m in _get(f"{endpoints['webhook_sink']}/messages").json()["messages"] if name in json.dumps(m)]

    def mailed() -> list[dict[str, Any]]:
        return [m for m in _get(f"{endpoints['mailpit']}/api/v1/messages").json()["messages"] if name in m["Subject"]]

    (message,) = _eventually(posted, f"{name} at the webhook sink")
    title = message["body"]["attachments"][0]["title"]
    assert title == f"[FIRING:1] {name} (critical) on episodes-api"
    # Grafana does not run natively: its links say so rather than pointing at nothing.
    assert "grafana-runs-only-with-compose.invalid/d/episodes-api" in message["body"]["attachments"][0]["text"]
    (mail,) = _eventually(mailed, f"{name} in Mailpit (critical alerts are e-mailed too)")
    assert mail["Subject"] == title
    assert [to["Address"] for to in mail["To"]] == [load_settings(environ=sandbox.env)["ALERT_EMAIL_TO"]]


def test_second_up_leaves_the_running_components_alone(sandbox: Sandbox) -> None:
    before = sandbox.running()
    again = sandbox.run("up", UP_TIMEOUT)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert not re.search(r"^(starting|setting up) ", again.stdout, re.MULTILINE)
    for name in COMPONENTS:
        assert f"{name} ... already running (pid {before[name][0]})" in again.stdout
    assert sandbox.running() == before


def test_down_stops_every_process_and_closes_every_port(sandbox: Sandbox) -> None:
    groups = {name: pid for name, (pid, _health) in sandbox.running().items()}
    assert set(groups) == set(COMPONENTS)
    members = {pid for pgid in groups.values() for pid in processes.group_members(pgid)}
    assert len(members) > len(groups)  # gunicorn workers, Celery's pool, PostgreSQL's backends, Elasticsearch's JVMs

    down = sandbox.run("down", DOWN_TIMEOUT)
    assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"
    for name in COMPONENTS:
        assert f"stopping {name} (pid {groups[name]}) ... stopped in" in down.stdout
    assert [pid for pid in members if processes.alive(pid)] == []
    assert [key for key in PORT_KEYS if port_in_use(sandbox.ports[key])] == []
    assert not (sandbox.state / "endpoints.json").exists()
    assert sandbox.running() == {}

    again = sandbox.run("down", DOWN_TIMEOUT)
    assert again.returncode == 0
    assert "Nothing is running." in again.stdout


# --- helpers -------------------------------------------------------------------------------------


def _mapped_loopback(address: str) -> bool:
    mapped = getattr(ipaddress.ip_address(address), "ipv4_mapped", None)
    return mapped is not None and mapped.is_loopback


def _listening_addresses(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket that one of ``pids`` holds, from /proc."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:  # gone, or another user's process while we are not root
            continue
        inodes |= {link[len("socket:["):-1] for link in links if link.startswith("socket:[")}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((str(ipaddress.ip_address(packed)), int(port, 16)))
    return found
