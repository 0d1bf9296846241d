"""Replicas on the compose stack: `docker compose up --scale app=3 --scale worker=2` on a project of
this module's own (free ports, its own .env, removed at the end with its volumes).

- Prometheus finds every replica of the app and the worker by itself (DNS discovery on the compose
  network: prometheus/scrape/compose/), one target per container.
- Requests through app-lb, the one published port, reach every app replica; Prometheus counts each
  of them exactly once, Jaeger has each one's trace and the shared log file its access record, and
  every replica (told apart by host.name in traces, service.node.name in records) has its share.
- The access records name the client, not app-lb, and not an X-Forwarded-For the client forged.
- A replica SIGKILLed mid-load: the others answer every request that was not in flight on it, and
  Prometheus drops it from its targets; started again, it is found again.
- A replica that stops answering while it stays on the network (frozen: `docker pause`): TargetDown
  fires for its instance and resolves once it answers again. A killed replica cannot show that: it
  leaves Docker's DNS with its container, so it stops being a target before `for:` can pass
  (prometheus/README.md: Replicas).
- Every worker replica stopped: no target is left to be down, and ServiceDown fires for the worker;
  it resolves once they are back.
- Every replica too busy to answer app-lb's check in time (an added latency of 5 s): app-lb fails
  open, and the clients get the app's own answers, not HAProxy's 503.

Compose only: it skips, with the reason, where no Docker engine with the compose plugin answers or
the app's image cannot be built (CI: a failure instead). Wall time on two cores, images built:
about three minutes.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import docker_engine
from sandbox.compose import compose_command
from sandbox.env import ROOT, Settings, create_env_file, load_settings
from tests.support.e2e_app import SCRIPT, USER
from tests.support.e2e_clients import Jaeger, Prometheus, scraped_after, session
from tests.support.e2e_stack import _image_problem, _own_stack_env, admin_headers, unavailable
from tests.support.visibility import wait_for

SCALE = {"app": 3, "worker": 2}
METRICS_PORTS = {"app": 9464, "worker": 9465}
# What the test needs: the app behind its balancer, what it uses, and the metrics and traces stack.
SERVICES = ("app-lb", "app", "worker", "postgres", "redis", "jaeger", "prometheus", "alertmanager",
            "webhook-sink", "mailpit")
# The sandbox's shortcuts, shorter still: a 2 s scrape and evaluation interval, the availability
# alerts after 6 s.
SCRAPE_INTERVAL = "2s"
ALERT_FOR = "TargetDown=6s ServiceDown=6s"
ROUTE = "/api/episodes/<id:episode_id>/assets"
REQUESTS = 60
CLIENTS = 6
UP_TIMEOUT = 900
# The DNS refresh interval (15 s) plus a few scrapes.
DISCOVERY_TIMEOUT = 60
SIGNAL_TIMEOUT = 90


@dataclass(frozen=True)
class Replica:
    container: str  # the container's name, <project>-<service>-<n>
    hostname: str  # what the app reports as host.name and service.node.name
    address: str  # its IP on the project's network

    def instance(self, service: str) -> str:
        return f"{self.address}:{METRICS_PORTS[service]}"


@dataclass
class ScaledStack:
    env: dict[str, str]
    settings: Settings
    prometheus: Prometheus
    jaeger: Jaeger
    app_url: str
    episode: int = 0
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(compose_command(self.settings, *args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def replicas(self, service: str) -> dict[str, Replica]:
        """The service's running containers, by name."""
        project = self.env["COMPOSE_PROJECT_NAME"]
        ids = _docker("ps", "--quiet", "--filter", f"label=com.docker.compose.project={project}",
                      "--filter", f"label=com.docker.compose.service={service}").split()
        found = {}
        for container in json.loads(_docker("inspect", *ids)) if ids else []:
            (network,) = container["NetworkSettings"]["Networks"].values()
            name = container["Name"].lstrip("/")
            found[name] = Replica(name, container["Config"]["Hostname"], network["IPAddress"])
        return found


def _docker(*args: str) -> str:
    out = docker_engine.docker(*args, timeout=120)
    assert out is not None, f"`docker {' '.join(args)}` failed"
    return out


@pytest.fixture(scope="module")
def stack() -> Iterator[ScaledStack]:
    if (problem := docker_engine.compose_problem() or _image_problem()) is not None:
        unavailable(problem)
    root = Path(tempfile.mkdtemp(prefix="e2e-scale-"))
    env = _own_stack_env(root, "compose", COMPOSE_PROJECT_NAME=f"obs-scale-{secrets.token_hex(4)}",
                         SANDBOX_SCRAPE_INTERVAL=SCRAPE_INTERVAL, SANDBOX_ALERT_FOR=ALERT_FOR)
    create_env_file(ROOT / ".env.example", root / ".env")
    settings = load_settings(environ=env)
    scaled = ScaledStack(env, settings, Prometheus(f"http://127.0.0.1:{env['PROMETHEUS_PORT']}"),
                         Jaeger(f"http://127.0.0.1:{env['JAEGER_UI_PORT']}"), f"http://127.0.0.1:{env['APP_PORT']}")
    try:
        scale = [arg for service, n in SCALE.items() for arg in ("--scale", f"{service}={n}")]
        done = scaled.compose("up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT), *scale, *SERVICES,
                              timeout=UP_TIMEOUT + 60)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        response = session().post(f"{scaled.app_url}/api/episodes", json={"title": "scale", "script": SCRIPT},
                                  headers={"X-User-ID": USER}, timeout=10)
        assert response.status_code == 201, response.text
        scaled.episode = response.json()["id"]
        yield scaled
    finally:
        subprocess.run([sys.executable, "-m", "sandbox", "down", "--mode", "compose", "--volumes"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300, check=False)
        shutil.rmtree(root, ignore_errors=True)


# --- discovery -----------------------------------------------------------------------------------


def _targets(prometheus: Prometheus, job: str) -> dict[str, float]:
    return prometheus.by_label(f'up{{job="{job}"}}', "instance")


def _discovered(stack: ScaledStack, service: str, *, expected: int | None = None) -> bool:
    """Whether Prometheus's targets of ``service`` are exactly its running containers, every one up."""
    replicas = stack.replicas(service).values()
    if expected is not None and len(replicas) != expected:
        return False
    wanted = {replica.instance(service): 1.0 for replica in replicas}
    return _targets(stack.prometheus, service) == wanted


@pytest.mark.parametrize("service", sorted(SCALE))
def test_prometheus_finds_every_replica_by_dns(stack: ScaledStack, service: str) -> None:
    assert len(stack.replicas(service)) == SCALE[service], _docker("ps", "--all")
    wait_for(f"every {service} replica a target of Prometheus, and up",
             lambda: _discovered(stack, service, expected=SCALE[service]), timeout=DISCOVERY_TIMEOUT)


# --- requests spread over the replicas -------------------------------------------------------------


def _per_instance(prometheus: Prometheus, moment: float) -> tuple[dict[str, float]] | None:
    """http_requests_total of the route by app instance (none yet: empty), from a scrape of every
    target after ``moment``; in a tuple, which an empty result leaves true for wait_for."""
    if not scraped_after(prometheus, moment):
        return None
    return (prometheus.by_label(f'sum by (instance) (http_requests_total{{job="app", endpoint="{ROUTE}"}})',
                                "instance"),)


def _get_assets(stack: ScaledStack, request_ids: list[str]) -> list[int]:
    url = f"{stack.app_url}/api/episodes/{stack.episode}/assets"

    def one(request_id: str) -> int:
        return session().get(url, headers={"X-User-ID": USER, "X-Request-ID": request_id}, timeout=30).status_code

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, request_ids))


def _traces(stack: ScaledStack, since: float) -> dict[str, str]:
    """request.id -> host.name of the server spans of the route that Jaeger holds since ``since``."""
    response = stack.jaeger.http.get(f"{stack.jaeger.url}/api/traces", timeout=10, params={
        "service": stack.settings["OTEL_SERVICE_NAME"], "operation": f"GET {ROUTE}", "limit": 10 * REQUESTS,
        "start": int(since * 1e6), "end": int((time.time() + 60) * 1e6)})
    response.raise_for_status()
    found = {}
    for trace in response.json().get("data") or []:
        for span in trace["spans"]:
            tags = {tag["key"]: tag["value"] for tag in span.get("tags", [])}
            if span["operationName"] == f"GET {ROUTE}" and "request.id" in tags:
                process = {tag["key"]: tag["value"] for tag in trace["processes"][span["processID"]].get("tags", [])}
                found[tags["request.id"]] = process.get("host.name", "")
    return found


def _access_records(stack: ScaledStack, request_ids: set[str]) -> list[dict[str, Any]]:
    """The access records of these requests in the app-logs volume's file (the one the shipper reads)."""
    done = stack.compose("exec", "-T", "--index", "1", "app", "sh", "-c", 'cat "$LOG_FILE"', timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [r for r in records if r.get("event") == "api_access" and r.get("request_id") in request_ids]


def test_requests_over_the_replicas_are_counted_traced_and_logged_once_each(stack: ScaledStack) -> None:
    replicas = stack.replicas("app").values()
    instances = {replica.instance("app") for replica in replicas}
    hostnames = {replica.hostname for replica in replicas}
    wait_for("every app replica discovered", lambda: _discovered(stack, "app", expected=SCALE["app"]),
             timeout=DISCOVERY_TIMEOUT)
    asked = time.time()
    (before,) = wait_for("a scrape before the requests", lambda: _per_instance(stack.prometheus, asked),
                         timeout=SIGNAL_TIMEOUT)
    started = time.time()
    request_ids = [f"scale-{stack.run}-{n}" for n in range(REQUESTS)]
    statuses = _get_assets(stack, request_ids)
    assert Counter(statuses) == {200: REQUESTS}
    answered = time.time()

    (after,) = wait_for("a scrape after the requests", lambda: _per_instance(stack.prometheus, answered),
                        timeout=SIGNAL_TIMEOUT)
    grown = {instance: after.get(instance, 0.0) - before.get(instance, 0.0) for instance in instances}
    assert set(after) <= instances, (after, instances)
    assert sum(grown.values()) == REQUESTS, (before, after)
    assert all(n > 0 for n in grown.values()), f"a replica served none of the requests: {grown}"

    traced = wait_for("every request's trace in Jaeger",
                      lambda: (found if set(found := _traces(stack, started)) >= set(request_ids) else None),
                      timeout=SIGNAL_TIMEOUT)
    assert {traced[request_id] for request_id in request_ids} == hostnames, traced

    records = wait_for("every request's access record in the log file",
                       lambda: (found if len(found := _access_records(stack, set(request_ids))) >= REQUESTS else None),
                       timeout=SIGNAL_TIMEOUT)
    assert sorted(r["request_id"] for r in records) == sorted(request_ids)  # each exactly once
    assert {r["service"]["node"]["name"] for r in records} == hostnames
    by_host = Counter(r["service"]["node"]["name"] for r in records)
    by_trace = Counter(traced[request_id] for request_id in request_ids)
    assert by_host == by_trace, "records and traces disagree on which replica answered"


def test_access_records_name_the_client_not_app_lb(stack: ScaledStack) -> None:
    # The client here is the host, which reaches app-lb's published port from the network's gateway.
    # An X-Forwarded-For the client sends itself is not believed: app-lb appends the address it saw.
    (balancer,) = json.loads(_docker("inspect", *stack.replicas("app-lb")))
    (network,) = balancer["NetworkSettings"]["Networks"].values()
    request_id = f"client-{stack.run}"
    response = session().get(f"{stack.app_url}/api/episodes/{stack.episode}/assets", timeout=30, headers={
        "X-User-ID": USER, "X-Request-ID": request_id, "X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    (record,) = wait_for("the request's access record", lambda: _access_records(stack, {request_id}), SIGNAL_TIMEOUT)
    assert record["request"]["ip"] == network["Gateway"], (record["request"], network["IPAddress"])


# --- a replica lost -----------------------------------------------------------------------------------


@dataclass
class Load:
    """Requests through app-lb from a few threads until stopped: (time sent, status or error) each."""

    url: str
    clients: int = CLIENTS
    results: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        with session() as http:
            while not self._stop.is_set():
                sent = time.time()
                try:
                    outcome = str(http.get(self.url, headers={"X-User-ID": USER}, timeout=30).status_code)
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                self.results.append((sent, outcome))

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def failed(self) -> list[tuple[float, str]]:
        return [result for result in self.results if result[1] != "200"]


def test_a_killed_replica_leaves_the_others_answering_and_is_found_again(stack: ScaledStack) -> None:
    victim = sorted(stack.replicas("app").values(), key=lambda r: r.container)[-1]
    with Load(f"{stack.app_url}/api/episodes/{stack.episode}/assets") as load:
        time.sleep(3)
        killed = time.time()
        _docker("kill", "--signal", "SIGKILL", victim.container)  # the engine leaves it dead: an operator's kill
        wait_for("the killed replica dropped from Prometheus's targets",
                 lambda: _discovered(stack, "app", expected=SCALE["app"] - 1), timeout=DISCOVERY_TIMEOUT)
        time.sleep(3)
    after_kill = [outcome for sent, outcome in load.results if sent > killed]
    assert after_kill.count("200") > 20, Counter(after_kill)
    # At most the requests in flight on the victim when it died: one per client thread.
    assert len(load.failed()) <= CLIENTS, Counter(outcome for _, outcome in load.failed())

    _docker("start", victim.container)
    wait_for("the replica healthy again", lambda: _docker("inspect", "--format", "{{.State.Health.Status}}",
                                                          victim.container) == "healthy", timeout=SIGNAL_TIMEOUT)
    wait_for("the replica a target again, and up", lambda: _discovered(stack, "app", expected=SCALE["app"]),
             timeout=DISCOVERY_TIMEOUT)


def _burst_answered(stack: ScaledStack, count: int = 2 * CLIENTS, timeout: float = 5) -> bool:
    url = f"{stack.app_url}/api/episodes/{stack.episode}/assets"

    def one(_: int) -> bool:
        try:
            return session().get(url, headers={"X-User-ID": USER}, timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    with ThreadPoolExecutor(CLIENTS) as pool:
        return all(pool.map(one, range(count)))


def _target_down(prometheus: Prometheus, instance: str) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts("TargetDown") if a["labels"].get("instance") == instance]


def test_a_replica_that_stops_answering_fires_target_down_until_it_answers_again(stack: ScaledStack) -> None:
    victim = sorted(stack.replicas("app").values(), key=lambda r: r.container)[0]
    instance = victim.instance("app")
    wait_for("every app replica up", lambda: _discovered(stack, "app", expected=SCALE["app"]),
             timeout=DISCOVERY_TIMEOUT)
    assert not _target_down(stack.prometheus, instance)
    _docker("pause", victim.container)
    try:
        firing = wait_for(f"TargetDown firing for {instance}",
                          lambda: [a for a in _target_down(stack.prometheus, instance) if a["state"] == "firing"],
                          timeout=SIGNAL_TIMEOUT)
        assert firing[0]["labels"]["job"] == "app" and firing[0]["labels"]["severity"] == "critical", firing
        # Once app-lb's check has taken the frozen replica out (two missed checks), the others answer
        # everything: a burst of requests, each answered within 5 s.
        wait_for("app-lb answering from the other replicas only", lambda: _burst_answered(stack),
                 timeout=SIGNAL_TIMEOUT, interval=1)
    finally:
        _docker("unpause", victim.container)
    wait_for(f"TargetDown for {instance} resolved", lambda: not _target_down(stack.prometheus, instance),
             timeout=SIGNAL_TIMEOUT)
    assert _targets(stack.prometheus, "app").get(instance) == 1.0


def _service_down(prometheus: Prometheus, job: str) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts("ServiceDown") if a["labels"].get("job") == job]


def test_no_worker_left_fires_service_down_until_they_are_back(stack: ScaledStack) -> None:
    wait_for("every worker replica up", lambda: _discovered(stack, "worker", expected=SCALE["worker"]),
             timeout=DISCOVERY_TIMEOUT)
    assert not _service_down(stack.prometheus, "worker")
    done = stack.compose("stop", "worker")
    assert done.returncode == 0, done.stderr[-2000:]
    try:
        # Gone from the targets where the host's resolver says NXDOMAIN for `worker` (as here), or
        # left as targets that fail where it cannot answer: either way none answers.
        wait_for("no worker target answering", lambda: 1.0 not in _targets(stack.prometheus, "worker").values(),
                 timeout=DISCOVERY_TIMEOUT)
        firing = wait_for("ServiceDown firing for the worker",
                          lambda: [a for a in _service_down(stack.prometheus, "worker") if a["state"] == "firing"],
                          timeout=SIGNAL_TIMEOUT)
        assert firing[0]["labels"]["severity"] == "critical", firing
        assert not _service_down(stack.prometheus, "app")
    finally:
        done = stack.compose("start", "worker")
    assert done.returncode == 0, done.stderr[-2000:]
    wait_for("both worker replicas targets again, and up",
             lambda: _discovered(stack, "worker", expected=SCALE["worker"]), timeout=DISCOVERY_TIMEOUT)
    wait_for("ServiceDown for the worker resolved", lambda: not _service_down(stack.prometheus, "worker"),
             timeout=SIGNAL_TIMEOUT)


# --- app-lb -------------------------------------------------------------------------------------


def _lb_slots(stack: ScaledStack, backend: str) -> dict[str, tuple[str, str]]:
    """app-lb's servers of ``backend``, from its statistics on the container's loopback:
    name -> (state, address; empty while the slot has none)."""
    (balancer,) = stack.replicas("app-lb")
    page = _docker("exec", balancer, "wget", "-q", "-O", "-", "http://127.0.0.1:8405/stats;csv")
    rows = csv.DictReader(io.StringIO(page.removeprefix("# ")))
    return {row["svname"]: (row["status"], row["addr"].rpartition(":")[0]) for row in rows
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")}


def _checked_states(stack: ScaledStack) -> set[str]:
    """The states of the checked slots that hold a replica's address."""
    return {state for state, address in _lb_slots(stack, "app").values() if address}


def _put_latency(stack: ScaledStack, latency_ms: float) -> None:
    response = session().put(f"{stack.app_url}/admin/chaos", json={"latency_ms": latency_ms},
                             headers=admin_headers(stack.settings), timeout=10)
    assert response.status_code == 200, response.text


def test_app_lb_fails_open_when_no_replica_answers_its_check_in_time(stack: ScaledStack) -> None:
    replicas = sorted(replica.address for replica in stack.replicas("app").values())
    assert sorted(a for _, a in _lb_slots(stack, "app-unchecked").values() if a) == replicas
    assert _checked_states(stack) == {"UP"}, _lb_slots(stack, "app")

    _put_latency(stack, 5000)  # each replica reads the knob from Redis on its next API request
    try:
        # Twice as many clients as gunicorn workers: each check waits behind a 5 s request, past its 2 s.
        with Load(f"{stack.app_url}/api/episodes/{stack.episode}/assets", clients=2 * CLIENTS) as load:
            wait_for("every replica out of app-lb's checked pool", lambda: _checked_states(stack) == {"DOWN"},
                     timeout=SIGNAL_TIMEOUT)
            all_down = time.time()
            time.sleep(8)
        during = Counter(outcome for sent, outcome in load.results if sent > all_down)
    finally:
        _put_latency(stack, 0)
    assert during and set(during) == {"200"}, during
    wait_for("every replica back in app-lb's checked pool", lambda: _checked_states(stack) == {"UP"},
             timeout=SIGNAL_TIMEOUT)
