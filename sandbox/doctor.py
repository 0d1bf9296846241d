"""``python -m sandbox doctor`` (``make doctor``): what ``make up`` will need, checked before it runs,
for the mode it would start (MODE= or SANDBOX_MODE, else auto).

Compose (asked for, or in auto mode an engine 20.10 or newer answers): the engine's version (older
than 25: said, since the stack then runs with a generated healthcheck override), the compose plugin
is v2 and recent enough, ``vm.max_map_count`` is high enough for Elasticsearch, memory fits the
stack's budget, and the ports docker-compose.yml publishes are free. Native: the programs of the
native sandbox are installed and its ports are free. Every check prints one line; the exit code is
1 when a check failed (``make up`` would fail), 0 otherwise (warnings included)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sandbox import compose, docker_engine, preflight
from sandbox.components import native
from sandbox.env import Settings
from sandbox.net import port_in_use
from sandbox.urls import recorded_mode

# Elasticsearch maps its index files: below this many mappings it fails under load (its bootstrap check).
MIN_MAX_MAP_COUNT = 262_144
# The most the memory limits of docker-compose.yml may add up to (a static test holds them to it):
# what a laptop with 8 GB can give Docker.
COMPOSE_MEMORY_BUDGET_MIB = 7_168
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str  # "ok", "warn" or "fail"
    detail: str


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def _warn(name: str, detail: str) -> Check:
    return Check(name, "warn", detail)


def _fail(name: str, detail: str) -> Check:
    return Check(name, "fail", detail)


def check_engine(version: str | None, cli_present: bool | None = None) -> Check:
    """``cli_present``: whether a docker CLI is on PATH (looked up when None)."""
    if cli_present is None:
        cli_present = shutil.which("docker") is not None
    if not cli_present:
        return _warn("docker engine", "no docker CLI: `make up` runs native processes (no Elastic stack, no Grafana)")
    if version is None:
        return _warn("docker engine", "no engine answers `docker version`: `make up` runs native processes "
                     "(start Docker, or check that your user may use its socket, for the compose stack)")
    parsed = docker_engine.parse_version(version)
    if parsed is None or parsed < docker_engine.MIN_ENGINE_VERSION:
        return _fail("docker engine", f"{version}: the compose stack needs engine "
                     f"{docker_engine.format_version(docker_engine.MIN_ENGINE_VERSION)} or newer")
    if parsed < docker_engine.START_INTERVAL_ENGINE_VERSION:
        every = compose.COMPAT_HEALTH_INTERVAL_SECONDS
        return _ok("docker engine", f"{version} (older than 25: healthchecks probe every {every} s instead of "
                   "using start_interval; README: Docker engines)")
    return _ok("docker engine", version)


def check_compose(version: tuple[int, ...] | None) -> Check:
    wanted = docker_engine.format_version(docker_engine.MIN_COMPOSE_VERSION)
    if version is None:
        return _fail("docker compose", f"`docker compose` (the v2 plugin) is missing: install it ({wanted} or newer; "
                     "`tools/build.sh docker-compose` builds one)")
    if version < docker_engine.MIN_COMPOSE_VERSION:
        return _fail("docker compose", f"{docker_engine.format_version(version)}: {wanted} or newer is needed")
    return _ok("docker compose", docker_engine.format_version(version))


def check_max_map_count(proc: Path = Path("/proc/sys/vm/max_map_count")) -> Check:
    try:
        value = int(proc.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _warn("vm.max_map_count", f"cannot read {proc} (not Linux?): Docker Desktop's VM sets it itself; "
                     f"elsewhere Elasticsearch needs at least {MIN_MAX_MAP_COUNT}")
    if value < MIN_MAX_MAP_COUNT:
        return _fail("vm.max_map_count", f"{value} < {MIN_MAX_MAP_COUNT}: Elasticsearch fails. Raise it with "
                     f"`sudo sysctl -w vm.max_map_count={MIN_MAX_MAP_COUNT}` (and in /etc/sysctl.d/ to keep it)")
    return _ok("vm.max_map_count", str(value))


def available_memory_mib(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.MULTILINE)
    return int(match[1]) // 1024 if match else None


def check_memory(available_mib: int | None, engine_total_mib: int | None) -> Check:
    budget = COMPOSE_MEMORY_BUDGET_MIB
    if engine_total_mib is not None and engine_total_mib < budget:
        return _warn("memory", f"the engine has {engine_total_mib} MiB; the stack's memory budget is {budget} MiB: "
                     "give Docker more memory, or expect out-of-memory kills (exit 137)")
    if available_mib is None:
        return _warn("memory", f"cannot tell the free memory; the stack's memory budget is {budget} MiB")
    if available_mib < budget:
        return _warn("memory", f"{available_mib} MiB available, the stack's memory budget is {budget} MiB: "
                     "it starts, but close other programs if containers get killed (exit 137)")
    return _ok("memory", f"{available_mib} MiB available (the stack's memory budget: {budget} MiB)")


def engine_memory_mib(timeout: float = 5.0) -> int | None:
    value = docker_engine.docker("info", "--format", "{{.MemTotal}}", timeout=timeout) or ""
    return int(value) // _MIB if value.isdigit() else None


def check_ports(s: Settings, keys: Iterable[str], in_use: Callable[[int], bool] = port_in_use) -> Check:
    busy = [f"{key}={s[key]}" for key in keys if in_use(s.port(key))]
    if not busy:
        return _ok("ports", "all free on 127.0.0.1")
    if recorded_mode(s):  # the sandbox runs
        return _warn("ports", f"in use: {', '.join(busy)}; the sandbox runs (`make status`), probably its own")
    return _fail("ports", f"in use by other programs: {', '.join(busy)}; stop them or choose other ports in "
                 f"{s.env_file}")


def check_native_programs() -> Check:
    """What `make up` needs natively, from the same table `make up` checks first (sandbox.preflight)."""
    gaps = preflight.missing("up")
    if not gaps:
        return _ok("native programs", ", ".join(need.name for need in preflight.NEEDS if "up" in need.purposes))
    packages = sorted({need.package for need, _ in gaps if need.package})
    install = f" ({preflight.install_command(packages)})" if packages else ""
    return _fail("native programs", "; ".join(f"{need.name}: {why}" for need, why in gaps) + install)


def run_checks(s: Settings, mode: str = "auto") -> list[Check]:
    """The checks of the mode ``make up`` would start (``mode``: auto, compose or native)."""
    version = None if mode == "native" else docker_engine.engine_version()
    checks = [] if mode == "native" else [check_engine(version)]
    usable = version is not None and (docker_engine.parse_version(version) or ()) >= docker_engine.MIN_ENGINE_VERSION
    if mode == "compose" or (mode == "auto" and usable):
        checks += [check_compose(docker_engine.compose_version()), check_max_map_count(),
                   check_memory(available_memory_mib(), engine_memory_mib()),
                   check_ports(s, compose.PUBLISHED_PORTS)]
        return checks
    if checks and checks[0].verdict == "fail":  # auto mode on a too old engine: `make up` goes native
        checks[0] = _warn(checks[0].name, f"{checks[0].detail}: `make up` runs native processes")
    native_ports = [key for component in native() for key in component.ports]
    # The native Elasticsearch listens on 127.0.0.1 only, so it does not enforce its bootstrap
    # checks: a low value is worth knowing (it may fail under load), not a failure.
    map_count = check_max_map_count()
    if map_count.verdict == "fail":
        map_count = _warn(map_count.name, f"{map_count.detail.split(':')[0]}: the native Elasticsearch (loopback "
                          "only) starts, but may fail under load; the compose stack's fails at once. Raise it "
                          f"with `sudo sysctl -w vm.max_map_count={MIN_MAX_MAP_COUNT}`")
    return [*checks, check_native_programs(), check_ports(s, native_ports), map_count]


def report(checks: list[Check]) -> int:
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"{check.verdict.upper():<5} {check.name:<{width}}  {check.detail}")
    failed = [c.name for c in checks if c.verdict == "fail"]
    print(f"\n{len(failed)} problem(s) to fix before `make up`: {', '.join(failed)}" if failed
          else "\nNothing stands in the way of `make up`.")
    return 1 if failed else 0


def main(s: Settings, mode: str = "auto") -> int:
    if os.environ.get("DOCKER_HOST"):
        print(f"DOCKER_HOST={os.environ['DOCKER_HOST']}: the engine's host, not this one, needs vm.max_map_count "
              "and memory; the checks below read this machine's.")
    return report(run_checks(s, mode))
