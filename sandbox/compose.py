"""``up``, ``down``, ``status``, ``stop <service>`` and ``start <service>`` of the compose stack
(docker-compose.yml), for ``python -m sandbox`` in compose mode.

``up`` starts every service whose image is on this machine or can be pulled (``plan``): a service
whose image is neither, and every service that depends on it, is left out with a one-line reason,
so a machine without a registry runs what ``make images`` could build. Then ``docker compose up -d
--wait`` (compose shows its progress), and ``.sandbox/endpoints.json`` gets the same keys as the
native sandbox where a component exists in both, ``"mode": "compose"``, the URLs of the components
only compose has, and ``"left_out"``. The app's and the worker's metrics ports are not published in
compose (Prometheus scrapes them inside the compose network), so ``metrics`` and ``worker_metrics``
are absent.

Every compose command names the compose files (COMPOSE_FILE, else docker-compose.yml) and generated
overrides after them, written under ``<SANDBOX_DIR>/compose/``, so that ``up``, ``stop``, ``start``
and ``logs`` always see the same model:

- ``sandbox.yml`` (``sandbox_override``): the sandbox's shortcuts of .env (SANDBOX_SCRAPE_INTERVAL,
  SANDBOX_ALERT_FOR, SANDBOX_ALERT_GROUP_*, SANDBOX_SPAN_EXPORT_DELAY_MS), as the native sandbox
  has them, so an alert shows within a minute; the files themselves keep their production values,
  which a plain ``docker compose up`` uses.
- ``engine-before-25.yml`` (``start_interval_override``), for engines older than 25, which refuse
  ``healthcheck.start_interval``: it drops it and probes more often instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox import docker_engine, monitoring
from sandbox.env import Settings
from sandbox.urls import Endpoint, compose_endpoints, endpoints_file, try_this, write_endpoints

# The host ports docker-compose.yml publishes (all on 127.0.0.1); a static test keeps this list and
# the compose file in step, `make doctor` checks that they are free.
PUBLISHED_PORTS = (
    "APP_PORT", "POSTGRES_PORT", "REDIS_PORT", "ELASTICSEARCH_PORT", "KIBANA_PORT", "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT", "WEBHOOK_SINK_PORT", "MAILPIT_UI_PORT", "SMTP_PORT", "JAEGER_UI_PORT",
    "JAEGER_OTLP_HTTP_PORT", "GRAFANA_PORT", "LOCUST_PORT",
)
# Long enough for a first start that builds the app image and pulls every other image.
WAIT_TIMEOUT_SECONDS = 900
# Without start_interval, how often an old engine probes: often enough that `up --wait` sees a
# service healthy within seconds of its start, for the price of a probe every 5 s for its whole life.
COMPAT_HEALTH_INTERVAL_SECONDS = 5
DEFAULT_COMPOSE_FILE = "docker-compose.yml"
# The label tools/images/build.sh puts on every image it builds: it marks a stand-in.
STAND_IN_LABEL = "org.observability-stack.image-inputs"
# The services whose spans the sandbox exports within SANDBOX_SPAN_EXPORT_DELAY_MS.
TRACED_SERVICES = ("app", "worker")


def compose_files(s: Settings) -> list[str]:
    """The compose files in use: COMPOSE_FILE from the shell or .env, as compose itself reads it."""
    chosen = os.environ.get("COMPOSE_FILE") or s.get("COMPOSE_FILE") or DEFAULT_COMPOSE_FILE
    separator = os.environ.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
    return [name for name in chosen.split(separator) if name]


def start_interval_override(files: Iterable[Path]) -> str:
    """An override for engines older than 25: no ``start_interval``, and an ``interval`` of at most
    COMPAT_HEALTH_INTERVAL_SECONDS where a service's healthcheck had one."""
    services: dict[str, dict[str, Any]] = {}
    for file in files:
        model = yaml.safe_load(file.read_text()) or {}
        for name, service in (model.get("services") or {}).items():
            check = (service or {}).get("healthcheck") or {}
            if "start_interval" not in check:
                continue
            reset: dict[str, Any] = {"start_interval": None}
            if monitoring.duration_seconds(str(check.get("interval", "30s"))) > COMPAT_HEALTH_INTERVAL_SECONDS:
                reset["interval"] = f"{COMPAT_HEALTH_INTERVAL_SECONDS}s"
            services[name] = {"healthcheck": reset}
    text = yaml.safe_dump({"services": services}, sort_keys=True)
    # `!reset` removes the key from the merged model; PyYAML cannot write a custom tag on a null.
    text = text.replace("start_interval: null", "start_interval: !reset null")
    return ("# Written by `python -m sandbox` for a Docker engine older than 25, which refuses\n"
            "# healthcheck.start_interval (README: Docker engines). Do not edit: it is written again.\n" + text)


def sandbox_override(s: Settings, home: Path) -> str:
    """The sandbox's shortcuts for the compose stack; Prometheus's configuration is written under ``home``."""
    config = monitoring.write_sandbox_prometheus(s, home / "prometheus")
    mounts = [{"type": "bind", "source": str(path), "target": f"/etc/prometheus/{path.name}", "read_only": True}
              for path in (config, config.parent / "rules")]
    delay = {"OTEL_BSP_SCHEDULE_DELAY": s.span_export_delay_ms}
    # Rewritten in place, the mounted files would not change the model: the label does, so that compose
    # recreates Prometheus when a SANDBOX_* setting changed its configuration.
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sorted(config.parent.rglob("*.yml")))).hexdigest()
    services: dict[str, Any] = {
        "prometheus": {"volumes": mounts, "labels": {"org.observability-stack.sandbox-config": digest[:16]}},
        "alertmanager": {"environment": {"ALERT_GROUP_WAIT": s.alert_group_wait,
                                         "ALERT_GROUP_INTERVAL": s.alert_group_interval}},
        **{service: {"environment": delay} for service in TRACED_SERVICES},
    }
    return ("# Written by `python -m sandbox` from the SANDBOX_* settings of .env (README: The sandbox's\n"
            "# shortcuts). Do not edit: it is written again by every `make up`.\n"
            + yaml.safe_dump({"services": services}, sort_keys=True))


def write_overrides(s: Settings) -> list[Path]:
    """Write the generated overrides this machine needs (module doc); returns their paths in order."""
    home = s.state_dir / "compose"
    home.mkdir(parents=True, exist_ok=True)
    written = [home / "sandbox.yml"]
    written[0].write_text(sandbox_override(s, home))
    for path in (home / "prometheus").rglob("*"):  # Prometheus (nobody) reads them, whatever the umask
        path.chmod(0o755 if path.is_dir() else 0o644)
    (home / "prometheus").chmod(0o755)
    if docker_engine.engine_needs_start_interval_override():
        written.append(home / "engine-before-25.yml")
        written[1].write_text(start_interval_override([s.root / name for name in compose_files(s)]))
    return written


def compose_command(s: Settings, *args: str) -> list[str]:
    """``docker compose`` for this repository's stack: the settings' .env file, the compose files and the
    generated overrides (written by ``up``; by the first command that needs them otherwise)."""
    overrides = [s.state_dir / "compose" / "sandbox.yml"]
    if docker_engine.engine_needs_start_interval_override():
        overrides.append(s.state_dir / "compose" / "engine-before-25.yml")
    if not all(path.exists() for path in overrides):
        overrides = write_overrides(s)
    files = [*(s.root / name for name in compose_files(s)), *overrides]
    return ["docker", "compose", "--project-directory", str(s.root), "--env-file", str(s.env_file),
            *(arg for path in files for arg in ("--file", str(path))), *args]


def _run(command: Sequence[str]) -> int:
    """Run with the terminal's stdout and stderr, so that compose's progress shows as it happens."""
    return subprocess.run(command, stdin=subprocess.DEVNULL, check=False).returncode  # noqa: S603 - our own argv


def _output(command: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,  # noqa: S603 - our own argv
                          timeout=timeout, check=False)


@dataclass
class Plan:
    """Which services ``up`` starts, and why the others are left out."""

    started: list[str]
    left_out: dict[str, str] = field(default_factory=dict)


def image_reference(image: str) -> str:
    """``postgres`` -> ``postgres:latest``, as ``docker images`` lists it; a tag or digest kept."""
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:latest"


def plan(services: Mapping[str, Mapping[str, Any]], present: set[str],
         unusable: Mapping[str, str] | None = None) -> Plan:
    """Services need their image in ``present`` or built by compose (by them or by another service, as the
    worker runs the image the app builds); those in ``unusable`` (service -> why its image here cannot
    serve it) are left out as well; a service that depends on a left-out one is left out too."""
    built = {image_reference(str(service.get("image"))) for service in services.values() if "build" in service}
    left_out = {name: f"image {service.get('image')} is not on this machine and could not be pulled"
                for name, service in services.items()
                if image_reference(str(service.get("image"))) not in present | built}
    for name, why in (unusable or {}).items():
        if name in services and name not in left_out:
            left_out[name] = why
    changed = True
    while changed:
        changed = False
        for name, service in services.items():
            missing = sorted(dep for dep in service.get("depends_on") or {} if dep in left_out)
            if name not in left_out and missing:
                left_out[name] = f"needs {', '.join(missing)}, left out"
                changed = True
    return Plan([name for name in services if name not in left_out], left_out)


def not_buildable(root: Path) -> dict[str, str]:
    """The services whose images `make images` cannot build here, with the reason
    (tools/images/not-buildable.tsv, which that script reads too)."""
    rows = (line.split("\t") for line in (root / "tools" / "images" / "not-buildable.tsv").read_text().splitlines()
            if line and not line.startswith("#"))
    return {service: reason for service, _file, reason in rows}


def local_images(*, stand_ins_only: bool = False) -> set[str]:
    """The images on this machine; with ``stand_ins_only``, those `make images` built (tools/images)."""
    label = ["--filter", f"label={STAND_IN_LABEL}"] if stand_ins_only else []
    return set((docker_engine.docker("images", *label, "--format", "{{.Repository}}:{{.Tag}}") or "").split())


def unusable_stand_ins(services: Mapping[str, Mapping[str, Any]], root: Path) -> dict[str, str]:
    """Services listed in not-buildable.tsv whose image here is a stand-in: it was built for another use
    (an extension) and cannot serve them. An upstream image of the same name can."""
    stand_ins = local_images(stand_ins_only=True)
    return {name: f"the stand-in {service.get('image')} cannot serve it: {why}"
            for name, why in not_buildable(root).items()
            if (service := services.get(name)) and image_reference(str(service.get("image"))) in stand_ins}


def plan_services(s: Settings) -> Plan:
    """What ``up`` can start: missing images are pulled first where a registry answers."""
    config = _output(compose_command(s, "config", "--format", "json"))
    if config.returncode != 0:
        raise RuntimeError(f"`docker compose config` failed: {config.stderr.strip()}")
    services = json.loads(config.stdout)["services"]
    unusable = unusable_stand_ins(services, s.root)
    first = plan(services, local_images(), unusable)
    missing = [name for name, why in first.left_out.items() if why.startswith("image ")]
    if not missing:
        return first
    print(f"Pulling the images not on this machine ({', '.join(missing)}) ...")
    try:
        _output(compose_command(s, "pull", "--quiet", "--ignore-pull-failures", *missing), timeout=WAIT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"  (the pull did not finish within {WAIT_TIMEOUT_SECONDS // 60} min: going on without those images)")
    return plan(services, local_images(), unusable)


def up(s: Settings) -> int:
    write_overrides(s)  # .env may have changed since the last `up`
    chosen = plan_services(s)
    for service, why in chosen.left_out.items():
        print(f"  left out: {service}: {why}")
    if chosen.left_out:
        print("  (`make images` builds the images this machine can build; tools/images/README.md says which)")
    print(f"docker compose up (the first start builds the app image; waiting up to {WAIT_TIMEOUT_SECONDS // 60} min "
          "for every service to be healthy) ...")
    code = _run(compose_command(s, "up", "--detach", "--wait", "--wait-timeout", str(WAIT_TIMEOUT_SECONDS),
                                "--remove-orphans", *chosen.started))
    if code != 0:
        print("docker compose up failed. `make ps` shows each service's state, `make logs` their output, "
              "`make doctor` checks the usual causes (vm.max_map_count, memory, ports). Without an image "
              "registry, `make images` builds the app's base image and the others.", file=sys.stderr)
        return code
    endpoints = [endpoint for service, endpoint in compose_endpoints(s) if service not in chosen.left_out]
    write_endpoints(s, {"mode": "compose", "left_out": chosen.left_out, **{e.key: e.url for e in endpoints}})
    print_summary(s, endpoints, chosen.left_out)
    return 0


def down(s: Settings, *, volumes: bool = False) -> int:
    """Remove the containers and the network; the named volumes too when ``volumes``."""
    code = _run(compose_command(s, "down", "--remove-orphans", *(["--volumes"] if volumes else [])))
    if code == 0:
        endpoints_file(s).unlink(missing_ok=True)  # nothing answers at those URLs any more
        print("Stopped; the data volumes are removed too." if volumes else
              "Stopped. The data volumes (PostgreSQL, Prometheus, Grafana, ...) are kept: `make clean` removes them.")
    return code


def status(s: Settings) -> int:
    return _run(compose_command(s, "ps", "--all"))


def stop_service(s: Settings, service: str) -> int:
    """Stop one service; its container (and data) stays for ``start_service``."""
    return _run(compose_command(s, "stop", service))


def start_service(s: Settings, service: str) -> int:
    """Start one stopped service, without touching the others, and wait until it is healthy."""
    return _run(compose_command(s, "up", "--detach", "--no-deps", "--wait", "--wait-timeout",
                                str(WAIT_TIMEOUT_SECONDS), service))


def print_summary(s: Settings, endpoints: list[Endpoint], left_out: Mapping[str, str]) -> None:
    print("\nThe sandbox runs (compose stack, published on 127.0.0.1 only):")
    width = max(len(e.label) for e in endpoints)
    for endpoint in endpoints:
        print(f"  {endpoint.label:<{width}}  {endpoint.shown}")
    print(f"  {'app metrics':<{width}}  not published: Prometheus scrapes app:9464 and worker:9465 inside the "
          "compose network (see its targets page)")
    for service, why in left_out.items():
        print(f"  {service:<{width}}  left out: {why}")
    print(f"Credentials: {s.env_file} (*_PASSWORD, ADMIN_TOKEN; Kibana and Elasticsearch: user elastic, "
          f"Grafana: user admin); the URLs with them: {endpoints_file(s)}")
    kibana = "" if "kibana" in left_out else "Kibana's data view app-logs-*, "
    print(f"Logs: `make logs` (every service), {kibana}or the app-logs volume.")
    print("\n".join(try_this(s, native=False)))
