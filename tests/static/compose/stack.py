"""The compose stack as `docker compose` resolves it, for the checks that read across files: each
variant (the core file alone, and with each optional fragment) loaded by compose-check, the container
ports of each service, and where a path inside a container comes from (a file of this repository,
a named volume, a tmpfs or the image itself)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tests.support.tools import tool_path

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# The core file alone and with each optional fragment: every combination a user can start.
VARIANTS: dict[str, tuple[Path, ...]] = {
    "core": (COMPOSE_FILE,),
    "jaeger-elasticsearch": (COMPOSE_FILE, REPO / "jaeger" / "compose.elasticsearch.yml"),
    "loki": (COMPOSE_FILE, REPO / "extensions" / "loki" / "docker-compose.loki.yml"),
    "otel-collector": (COMPOSE_FILE, REPO / "extensions" / "otel-collector" / "docker-compose.otel-collector.yml"),
    "elasticsearch-cluster": (COMPOSE_FILE, REPO / "extensions" / "elasticsearch-cluster"
                              / "docker-compose.elasticsearch-cluster.yml"),
}

# The ports each service listens on inside its container (the project's fixed facts; Loki and Alloy
# from extensions/loki). A reference `host:port` to a service must name one of them.
CONTAINER_PORTS: dict[str, frozenset[int]] = {
    "app": frozenset({8000, 9464}),
    # 8405: HAProxy's monitor URI for the healthcheck, on the container's loopback only (app-lb/haproxy.cfg).
    "app-lb": frozenset({8000, 8405}),
    "worker": frozenset({9465}),
    "postgres": frozenset({5432}),
    "redis": frozenset({6379}),
    # 5066: Filebeat's own stats endpoint, on the container's loopback only (filebeat/filebeat.yml).
    "filebeat": frozenset({5066}),
    "logstash": frozenset({5044, 9600}),
    "elasticsearch": frozenset({9200}),
    # extensions/elasticsearch-cluster: the other two nodes, and the one-shot that makes their files.
    "elasticsearch-2": frozenset({9200}),
    "elasticsearch-3": frozenset({9200}),
    "elasticsearch-cluster-files": frozenset(),
    "kibana": frozenset({5601}),
    "setup": frozenset(),
    "prometheus": frozenset({9090}),
    "alertmanager": frozenset({9093}),
    "grafana": frozenset({3000}),
    # 16685: the query gRPC API that jaeger/config*.yaml also opens.
    "jaeger": frozenset({16686, 16685, 4317, 4318, 13133, 8888}),
    "mailpit": frozenset({8025, 1025}),
    "webhook-sink": frozenset({9099}),
    "node-exporter": frozenset({9100}),
    "loadgen": frozenset({8089}),
    "loki": frozenset({3100}),
    # Alloy's UI and /-/healthy, on the container's loopback only.
    "alloy": frozenset({12345}),
    # The collector's health check and own metrics, on the container's loopback only.
    "otel-collector": frozenset({13133, 8888}),
    "otel-collector-volume": frozenset(),
}


@dataclass(frozen=True)
class Stack:
    """One variant as compose resolves it (interpolated with a .env as `make up` writes it)."""

    name: str
    services: dict[str, dict[str, Any]]
    volumes: frozenset[str]


def load_stack(name: str, env_file: Path) -> Stack:
    files = VARIANTS[name]
    command = [str(tool_path("compose-check")), "-env-file", str(env_file), "-project-dir", str(REPO), *map(str, files)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, f"compose-check refused {[f.name for f in files]}:\n{done.stderr}"
    project = json.loads(done.stdout)["project"]
    return Stack(name, project["services"], frozenset(project.get("volumes") or {}))


def image_name(image: str) -> str:
    """`prom/prometheus:v3.16.0` -> `prom/prometheus`: the repository, without the tag."""
    repository, _, tag = image.rpartition(":")
    return repository if repository and "/" not in tag else image


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind", "volume" or "tmpfs"
    source: str  # host path, volume name, or "" for a tmpfs
    target: PurePosixPath
    read_only: bool


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = [Mount(v["type"], v.get("source", ""), PurePosixPath(v["target"]), bool(v.get("read_only")))
             for v in service.get("volumes") or []]
    found += [Mount("tmpfs", "", PurePosixPath(entry.split(":", 1)[0]), False) for entry in service.get("tmpfs") or []]
    return found


def mount_of(service: dict[str, Any], path: str | PurePosixPath) -> Mount | None:
    """The mount a container path lies in (the deepest one), or None: the path is the image's."""
    path = PurePosixPath(path)
    candidates = [m for m in mounts(service) if path == m.target or m.target in path.parents]
    return max(candidates, key=lambda m: len(m.target.parts), default=None)


def host_path(service: dict[str, Any], path: str | PurePosixPath) -> Path | None:
    """The file of this repository a container path shows, or None when no repository bind mount holds it."""
    mount = mount_of(service, path)
    if mount is None or mount.kind != "bind" or not Path(mount.source).is_relative_to(REPO):
        return None
    return Path(mount.source) / PurePosixPath(path).relative_to(mount.target)


def mounted_repo_files(service: dict[str, Any]) -> Iterator[tuple[PurePosixPath, Path]]:
    """(container path, repository file) of every file the service gets through a bind mount."""
    for mount in mounts(service):
        source = Path(mount.source)
        if mount.kind != "bind" or not source.is_relative_to(REPO):
            continue
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" in file.parts:
                continue
            yield mount.target / file.relative_to(source) if file != source else mount.target, file
