"""`python -m sandbox up|status|down` for real (what `make up`, `make status` and `make down` run).

The sandbox under test has a state directory, a .env and ports of its own (SANDBOX_DIR,
SANDBOX_ENV_FILE and the *_PORT variables, which win over .env), so it never meets a sandbox the
user runs, nor the servers of the other tests. It is always stopped at the end.
"""

from __future__ import annotations

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from sandbox import postgres, processes, redis_server
from sandbox.common import MissingToolError, port_in_use
from sandbox.components import native
from tests.support.logs import read_log_file
from tests.support.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
PORT_KEYS = ("APP_PORT", "APP_METRICS_PORT", "WORKER_METRICS_PORT", "POSTGRES_PORT", "REDIS_PORT",
             "WEBHOOK_SINK_PORT", "SMTP_PORT")
COMPONENTS = [component.name for component in native()]
START_TIMEOUT = 45  # per component, inside `up`
UP_TIMEOUT = START_TIMEOUT * len(COMPONENTS) + 30
DOWN_TIMEOUT = 25 * len(COMPONENTS)  # at most 20 s of SIGTERM grace per component, then SIGKILL
_STATUS_LINE = re.compile(r"^(?P<name>\w+)\s+running\s+pid (?P<pid>\d+)\s+(?P<health>.*)$")


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


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _require_server_binaries() -> None:
    try:
        postgres.find_bindir()
        postgres.system_user()
        redis_server.find_binary()
    except MissingToolError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so this may not skip: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    _require_server_binaries()
    # As root, PostgreSQL runs as `postgres`, which cannot enter pytest's private temp dirs: the state
    # goes to a world-traversable directory, as .sandbox/ is inside a checkout.
    parent = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    parent.chmod(0o755)
    ports = dict(zip(PORT_KEYS, _distinct_free_ports(len(PORT_KEYS)), strict=True))
    env = {**os.environ, "SANDBOX_DIR": str(parent / "state"),
           "SANDBOX_ENV_FILE": str(tmp_path_factory.mktemp("sandbox-env") / ".env"),
           "SANDBOX_START_TIMEOUT": str(START_TIMEOUT), **{key: str(port) for key, port in ports.items()}}
    box = Sandbox(env, parent / "state", ports)
    try:
        box.first_up = box.run("up", UP_TIMEOUT)
        yield box
    finally:
        box.run("down", DOWN_TIMEOUT)
        shutil.rmtree(parent, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_starts_every_component_healthy(sandbox: Sandbox) -> None:
    up = sandbox.first_up
    assert up is not None
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
    for name in COMPONENTS:
        assert re.search(rf"^starting {name} \.\.\. ready in \d+\.\ds", up.stdout, re.MULTILINE), up.stdout
    health = {name: health for name, (_pid, health) in sandbox.running().items()}
    assert health == dict.fromkeys(COMPONENTS, "healthy")
    # The summary: URLs with masked credentials, what is docker-only, what comes later.
    assert f"postgresql://app:***@127.0.0.1:{sandbox.ports['POSTGRES_PORT']}/app" in up.stdout
    assert "Docker only (compose): Filebeat, Logstash, Kibana, Grafana." in up.stdout
    assert "Natively with a later issue: Prometheus, Alertmanager, Jaeger, Elasticsearch, Mailpit." in up.stdout


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

    with psycopg.connect(endpoints["postgres"], connect_timeout=5) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == ("app", "app")
    assert redis.Redis.from_url(endpoints["redis"], socket_timeout=5).ping()
    assert requests.get(f"{endpoints['webhook_sink']}/messages", timeout=5).json()["messages"] == []
    with smtplib.SMTP("127.0.0.1", ports["SMTP_PORT"], timeout=5) as smtp:
        assert smtp.noop()[0] == 250
    assert "http_requests_in_flight" in requests.get(f"{endpoints['metrics']}/metrics", timeout=5).text
    assert requests.get(f"{endpoints['worker_metrics']}/metrics", timeout=5).status_code == 200


def test_episode_request_reaches_the_shared_log_file_with_its_request_id(sandbox: Sandbox) -> None:
    request_id = f"sandbox-test-{uuid.uuid4().hex}"
    response = requests.post(f"{sandbox.endpoints()['app']}/api/episodes", json={"title": "t", "script": "s"},
                             headers={"X-Request-ID": request_id}, timeout=10)
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id

    log_file = sandbox.state / "logs" / "app.jsonl"
    deadline = time.monotonic() + 10
    while True:
        access = [r for r in read_log_file(log_file) if r.get("event") == "api_access"
                  and r.get("request_id") == request_id]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(access) == 1, f"no access record for {request_id} in {log_file}"
    assert access[0]["status_code"] == 201
    assert access[0]["request"]["path"] == "/api/episodes"


def test_second_up_leaves_the_running_components_alone(sandbox: Sandbox) -> None:
    before = sandbox.running()
    again = sandbox.run("up", UP_TIMEOUT)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert not re.search(r"^starting ", again.stdout, re.MULTILINE)
    for name in COMPONENTS:
        assert f"{name} ... already running (pid {before[name][0]})" in again.stdout
    assert sandbox.running() == before


def test_down_stops_every_process_and_closes_every_port(sandbox: Sandbox) -> None:
    groups = {name: pid for name, (pid, _health) in sandbox.running().items()}
    assert set(groups) == set(COMPONENTS)
    members = {pid for pgid in groups.values() for pid in processes.group_members(pgid)}
    assert len(members) > len(groups)  # gunicorn workers, Celery's pool, PostgreSQL's backends

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
