"""The three-node Elasticsearch cluster (extensions/elasticsearch-cluster) with the collector shipping
logs into it, on a compose project of this module's own (free ports, its own .env, removed at the end
with its volumes).

- The cluster forms with transport TLS, file-realm users and roles (setup makes none: its security
  API is not there on the stand-in), and setup's index template gives app-logs-* one replica.
- One node stopped while the collector ships a steady stream of log lines: every line is in
  Elasticsearch exactly once, and once the node is back the cluster is green with all three nodes.

Where the engine cannot give a container 65,535 open files (this machine kind: a hard limit of
20,000), Elasticsearch's bootstrap checks stop any node whose transport listens beyond loopback:
the nodes then share one network namespace (tests/e2e/cluster/one-network-namespace.yml, which says
how that differs). Compose only: it skips, with the reason, where no Docker engine with the compose
plugin answers, an image is missing or vm.max_map_count is too low (CI: a failure instead, but for
vm.max_map_count, which CI sets). Wall time on two cores, images built: about four minutes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import docker_engine
from sandbox.compose import compose_command
from sandbox.doctor import MIN_MAX_MAP_COUNT
from sandbox.env import ROOT, Settings, create_env_file, load_settings
from tests.support.e2e_stack import _image_problem, _own_stack_env, unavailable
from tests.support.visibility import wait_for

EXTENSION = "extensions/elasticsearch-cluster"
COMPOSE_FILES = ("docker-compose.yml", "extensions/otel-collector/docker-compose.otel-collector.yml",
                 f"{EXTENSION}/docker-compose.elasticsearch-cluster.yml",
                 f"{EXTENSION}/docker-compose.otel-collector.yml", "tests/e2e/cluster/without-kibana.yml")
ONE_NAMESPACE = "tests/e2e/cluster/one-network-namespace.yml"
NODES = ("elasticsearch", "elasticsearch-2", "elasticsearch-3")
STOPPED = "elasticsearch-3"  # not the first node: in one network namespace, it holds the others' network
NOFILE = 65535  # Elasticsearch's bootstrap check
LINES = 3000
LINES_PER_SECOND = 100
APP_IMAGE = "observability-stack/app:local"
UP_TIMEOUT = 900
SHIPPED_TIMEOUT = 180
GREEN_TIMEOUT = 300

# Appends LINES JSON records to the app's log file at a steady rate, as the app writes them.
WRITER = """
import json, sys, time
from datetime import datetime, timezone
run, lines, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open("/var/log/app/app.jsonl", "a", buffering=1) as out:
    for seq in range(lines):
        now = datetime.now(timezone.utc).isoformat()
        out.write(json.dumps({"timestamp": now, "level": "INFO", "logger": "cluster-test", "message": f"{run} {seq}",
                              "request_id": run}) + "\\n")
        time.sleep(1 / rate)
"""


@dataclass
class Cluster:
    env: dict[str, str]
    settings: Settings
    url: str
    auth: tuple[str, str]

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(compose_command(self.settings, *args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}{path}", params=params, auth=self.auth, timeout=30)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        return self.get("/_cluster/health")


def _max_map_count() -> int:
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return 0


def _engine_gives_open_files(count: int) -> bool:
    """Whether a container may have ``count`` open files (the engine's own hard limit caps it)."""
    return docker_engine.docker("run", "--rm", "--ulimit", f"nofile={count}:{count}", "--entrypoint", "true",
                                APP_IMAGE, timeout=60) is not None


def _log_volume_for_the_app(project: str) -> None:
    """The project's app-logs volume, made as compose would and first mounted by the app's image, so
    that it belongs to the app's user: the test writes the log lines in the app's place (no app runs)."""
    volume = f"{project}_app-logs"
    made = docker_engine.docker("volume", "create", "--label", f"com.docker.compose.project={project}",
                                "--label", "com.docker.compose.volume=app-logs", volume)
    assert made is not None, f"docker volume create {volume} failed"
    mounted = docker_engine.docker("run", "--rm", "--network", "none", "-v", f"{volume}:/var/log/app",
                                   "--entrypoint", "true", APP_IMAGE, timeout=60)
    assert mounted is not None, f"could not mount {volume} in {APP_IMAGE}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if (problem := docker_engine.compose_problem() or _image_problem()) is not None:
        unavailable(problem)
    if (count := _max_map_count()) < MIN_MAX_MAP_COUNT:
        pytest.skip(f"vm.max_map_count is {count}, below the {MIN_MAX_MAP_COUNT} a cluster's nodes need: "
                    f"`sysctl -w vm.max_map_count={MIN_MAX_MAP_COUNT}` (.ci/run sets it)")
    files = [*COMPOSE_FILES] + ([] if _engine_gives_open_files(NOFILE) else [ONE_NAMESPACE])
    root = Path(tempfile.mkdtemp(prefix="e2e-cluster-"))
    env = _own_stack_env(root, "compose", COMPOSE_PROJECT_NAME=f"obs-cluster-{secrets.token_hex(4)}")
    create_env_file(ROOT / ".env.example", root / ".env")
    # Where compose and the sandbox both read it, as a person using the extensions would set it.
    with (root / ".env").open("a") as dotenv:
        dotenv.write(f"COMPOSE_FILE={os.pathsep.join(files)}\n")
    settings = load_settings(environ=env)
    cluster = Cluster(env, settings, f"http://127.0.0.1:{env['ELASTICSEARCH_PORT']}",
                      ("elastic", settings.get("ELASTIC_PASSWORD")))
    try:
        for image in (f"elasticsearch:{settings.get('ELASTIC_VERSION')}",
                      f"otel/opentelemetry-collector-contrib:{settings.get('OTELCOL_VERSION')}"):
            if docker_engine.docker("image", "inspect", image) is None:
                unavailable(f"{image} is not on this machine: `make images` builds it")
        _log_volume_for_the_app(cluster.env["COMPOSE_PROJECT_NAME"])
        done = cluster.compose("up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT), *NODES, "otel-collector",
                               timeout=UP_TIMEOUT + 60)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield cluster
    finally:
        subprocess.run([sys.executable, "-m", "sandbox", "down", "--mode", "compose", "--volumes"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300, check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_the_cluster_forms_with_transport_tls_and_file_realm_users(cluster: Cluster) -> None:
    health = wait_for("the cluster green with three nodes",
                      lambda: (h := cluster.health())["status"] == "green" and h["number_of_nodes"] == 3 and h,
                      GREEN_TIMEOUT)
    assert health["cluster_name"] == "observability-stack"
    settings = cluster.get("/_nodes/settings", filter_path="nodes.*.settings.xpack.security.transport.ssl.enabled")
    assert [node["settings"]["xpack"]["security"]["transport"]["ssl"]["enabled"]
            for node in settings["nodes"].values()] == ["true"] * 3
    writer = ("logstash_writer", cluster.settings.get("LOGSTASH_WRITER_PASSWORD"))
    whoami = requests.get(f"{cluster.url}/_security/_authenticate", auth=writer, timeout=30)
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["authentication_realm"]["type"] == "file"
    assert whoami.json()["roles"] == ["logstash_writer"]
    wrong = requests.get(f"{cluster.url}/_cluster/health", auth=("logstash_writer", "not-the-password"), timeout=30)
    assert wrong.status_code == 401
    template = cluster.get("/_index_template/app-logs")["index_templates"][0]["index_template"]
    assert template["template"]["settings"]["index"]["auto_expand_replicas"] == "0-1"


def _write_lines(cluster: Cluster, run: str) -> subprocess.CompletedProcess[str]:
    """The writer, in a container of the app's image (its user owns the log volume) on that volume."""
    volume = f"{cluster.env['COMPOSE_PROJECT_NAME']}_app-logs"
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", "10001:10001", "-v",
                           f"{volume}:/var/log/app", "--entrypoint", "python", APP_IMAGE, "-c", WRITER,
                           run, str(LINES), str(LINES_PER_SECOND)],
                          capture_output=True, text=True, timeout=300, check=False)


def _shipped(cluster: Cluster, run: str) -> tuple[int, int]:
    """(documents of this run, distinct lines among them), from one search. The lines are counted
    here, exactly: Elasticsearch's cardinality aggregation is an estimate, which cannot tell one
    duplicated line from a hash collision."""
    body = {"size": 10_000, "track_total_hits": True, "_source": ["message"], "query": {"term": {"request_id": run}}}
    response = requests.post(f"{cluster.url}/app-logs-*/_search", json=body, auth=cluster.auth, timeout=30)
    response.raise_for_status()
    hits = response.json()["hits"]
    return hits["total"]["value"], len({hit["_source"]["message"] for hit in hits["hits"]})


def test_a_node_stopped_under_log_load_loses_no_document_and_the_cluster_heals(cluster: Cluster) -> None:
    wait_for("the cluster green", lambda: cluster.health()["status"] == "green", GREEN_TIMEOUT)
    run = uuid.uuid4().hex
    written: list[subprocess.CompletedProcess[str]] = []
    writer = threading.Thread(target=lambda: written.append(_write_lines(cluster, run)))
    started = datetime.now(UTC)
    writer.start()
    try:
        wait_for("the first lines in Elasticsearch", lambda: _shipped(cluster, run)[0] > 0, 60)
        # The day's index may have just been made by these lines: its replica must be in sync before a
        # node goes, or the node may take the only copy of a shard with it.
        wait_for("every shard of app-logs-* with its replica",
                 lambda: cluster.get("/_cluster/health/app-logs-*")["status"] == "green", GREEN_TIMEOUT)
        stopped = cluster.compose("stop", STOPPED)
        assert stopped.returncode == 0, stopped.stderr
        wait_for(f"{STOPPED} gone from the cluster", lambda: cluster.health()["number_of_nodes"] == 2, 120)
    finally:
        writer.join(timeout=300)
    assert written and written[0].returncode == 0, written and written[0].stderr
    elapsed = (datetime.now(UTC) - started).total_seconds()
    assert elapsed > 5, "the node was stopped after the writer had finished: no load while it went"
    counts = wait_for(f"all {LINES} lines in Elasticsearch", lambda: (c := _shipped(cluster, run))[0] >= LINES and c,
                      SHIPPED_TIMEOUT)
    assert counts == (LINES, LINES), f"{counts[0]} documents, {counts[1]} distinct lines, of {LINES} written"

    restarted = cluster.compose("start", STOPPED)
    assert restarted.returncode == 0, restarted.stderr
    health = wait_for("the cluster green again with three nodes",
                      lambda: (h := cluster.health())["status"] == "green" and h["number_of_nodes"] == 3 and h,
                      GREEN_TIMEOUT)
    assert health["unassigned_shards"] == 0
    shards = cluster.get("/_cat/shards/app-logs-*", format="json")
    by_shard: dict[str, list[dict[str, Any]]] = {}
    for shard in shards:
        by_shard.setdefault(f"{shard['index']}/{shard['shard']}", []).append(shard)
    for name, copies in by_shard.items():
        assert sorted(copy["prirep"] for copy in copies) == ["p", "r"], f"{name}: {json.dumps(copies)}"
        assert len({copy["node"] for copy in copies}) == 2, f"{name}: both copies on one node"
