"""What `make up` and `make test` need from the machine, checked first, before any build or download.

Runs on the system's Python alone (standard library and stdlib-only sandbox modules), before the
virtualenv exists: `python3 -m sandbox.preflight up|test`. Each need is a program or a file, with
the Debian package that provides it where there is one. When some are missing: as root on Debian or
Ubuntu with apt-get, the packages are installed; otherwise the one command that installs them is
printed and the exit code is 1. Needs no package provides (Go, Node.js, a JDK 21 on Debian 12) are
named with what to install. `make doctor` reports the same table (`needs`).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox import docker_engine, tools
from sandbox.common import MissingToolError
from sandbox.engines import elasticsearch as es
from sandbox.env import ROOT, load_settings

_MAKE_TOOLS = [line.split()[0] for line in (ROOT / "tools" / "go-tools.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#") and line.split()[1] == "make"]


@dataclass(frozen=True)
class Need:
    name: str
    missing: Callable[[], str | None]  # None when present, else what is missing
    package: str | None = None  # the Debian package that provides it
    purposes: frozenset[str] = frozenset({"up", "test"})


def _program(name: str) -> Callable[[], str | None]:
    return lambda: None if shutil.which(name) else f"`{name}` is not installed"


def _postgres() -> str | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl") or shutil.which("pg_ctl")
    return None if found else "the PostgreSQL server (initdb, pg_ctl) is not installed"


def _java() -> str | None:
    try:
        es.find_java()
    except MissingToolError as exc:
        return str(exc)
    return None


def _tools_built() -> bool:
    return all(tools.path(name).is_file() for name in _MAKE_TOOLS)


def _go() -> str | None:
    if _tools_built() or shutil.which("go"):
        return None
    return (f"Go {load_settings()['GO_VERSION']} or newer is needed once, to build {', '.join(_MAKE_TOOLS)} "
            "(tools/build.sh); install it from Go's own release archives")


MIN_NODE = (20, 19)  # what the Prometheus UI's build tools ask for (tools/build.sh checks it too)


def _node_version() -> tuple[int, ...] | None:
    try:
        done = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S607
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = done.stdout.strip().lstrip("v").split(".")[:2]
    if done.returncode != 0 or not all(part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def _node() -> str | None:
    if _tools_built():
        return None
    version = _node_version() if shutil.which("npm") else None
    if version is not None and version >= MIN_NODE:
        return None
    return (f"Node.js {'.'.join(map(str, MIN_NODE))} or newer with npm is needed once, to build the Prometheus "
            "and Mailpit web UIs")


def _maven() -> str | None:
    version = load_settings().elastic_version
    if es.cached(version) or shutil.which("mvn"):
        return None
    return f"`mvn` is needed once, to download Elasticsearch {version}"


NEEDS: tuple[Need, ...] = (
    Need("PostgreSQL server", _postgres, "postgresql"),
    Need("redis-server", _program("redis-server"), "redis-server"),
    Need(f"Java {es.MIN_JAVA}+ (Elasticsearch)", _java),
    Need("Maven (the Elasticsearch download)", _maven, "maven"),
    Need("Go (the pinned tools)", _go),
    Need("Node.js and npm (the web UIs)", _node),
    # The tests alone: Alertmanager's render.sh runs under busybox as in its image; the browser
    # tests drive Debian's Chromium; the benchmark harness's tests run wrk, and valgrind for micro (f).
    Need("busybox", _program("busybox"), "busybox", frozenset({"test"})),
    Need("chromium (browser tests)", _program("chromium"), "chromium", frozenset({"test"})),
    Need("wrk (benchmark tests)", _program("wrk"), "wrk", frozenset({"test"})),
    Need("valgrind (benchmark tests)", _program("valgrind"), "valgrind", frozenset({"test"})),
)


def missing(purpose: str, needs: Sequence[Need] = NEEDS) -> list[tuple[Need, str]]:
    return [(need, why) for need in needs if purpose in need.purposes and (why := need.missing()) is not None]


def apt_can_install() -> bool:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        return False
    return any(f"ID={name}" in release or (f"ID_LIKE={name}" in release) for name in ("debian", "ubuntu"))


def install_command(packages: Sequence[str]) -> str:
    """The one command that installs ``packages``, as a person would type it."""
    return f"sudo apt-get install -y --no-install-recommends {' '.join(packages)}"


def install(packages: Sequence[str]) -> bool:
    print(f"==> installing {' '.join(packages)} (apt-get, as root)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
        # dpkg's unpacking chatter is shown only when something went wrong.
        done = subprocess.run(command, env=env, check=False, capture_output=True, text=True)  # noqa: S603 - fixed argv, Debian names
        if done.returncode != 0:
            print(done.stdout + done.stderr, end="", file=sys.stderr)
            print(f"`{' '.join(command)}` failed", file=sys.stderr)
            return False
    return True


def run(purpose: str, mode: str = "auto") -> int:
    if purpose == "up" and mode != "native" and (mode == "compose" or docker_engine.compose_problem() is None):
        return 0  # the compose stack: `python -m sandbox up` checks the engine and the plugin itself
    gaps = missing(purpose)
    packages = sorted({need.package for need, _ in gaps if need.package})
    if packages and apt_can_install() and install(packages):
        gaps = missing(purpose)
        packages = sorted({need.package for need, _ in gaps if need.package})
    if not gaps:
        return 0
    print(f"`make {purpose}` needs what this machine lacks:", file=sys.stderr)
    for need, why in gaps:
        print(f"  {need.name}: {why}", file=sys.stderr)
    if packages:
        print(f"Install the packages with:\n  {install_command(packages)}", file=sys.stderr)
    return 1


def chosen_mode(environ: dict[str, str] | None = None) -> str:
    """MODE= of make, else SANDBOX_MODE of the environment or of .env (as `up` decides)."""
    env = os.environ if environ is None else environ
    return env.get("MODE") or load_settings(environ=env)["SANDBOX_MODE"] or "auto"


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("up", "test"):
        print("usage: python3 -m sandbox.preflight up|test", file=sys.stderr)
        return 2
    return run(argv[0], chosen_mode())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
