"""The Docker side of this machine: does an engine answer, which version is it, which compose plugin.

Every question is one ``docker`` call from PATH, as a user would make it, bounded by a timeout: a hung
engine counts as none. ``compose_problem()`` is the one verdict ``make up`` and the tests share: why
the compose stack cannot run here, or None when it can (``make doctor`` reports the same floors check
by check).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

# `up --wait`, secrets from the environment, `!reset` in override files.
MIN_COMPOSE_VERSION = (2, 24, 0)
# The oldest engine the stack runs on: Debian 12's docker.io (tested on 20.10.24).
MIN_ENGINE_VERSION = (20, 10)
# Engine 25 (API 1.44) is the first to accept healthcheck.start_interval; sandbox/compose.py gives
# older engines an override without it.
START_INTERVAL_ENGINE_VERSION = (25, 0)
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, ...] | None:
    """``"20.10.24+dfsg1"`` -> ``(20, 10, 24)``; ``"v2.24.0-desktop.1"`` -> ``(2, 24, 0)``; None if no version."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def docker(*args: str, timeout: float = 60.0) -> str | None:
    """The stripped stdout of ``docker ARGS``, or None when it fails, hangs or there is no CLI."""
    if shutil.which("docker") is None:
        return None
    try:
        done = subprocess.run(["docker", *args], capture_output=True, text=True,  # noqa: S603, S607 - the user's CLI
                              stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def engine_version(timeout: float = 5.0) -> str | None:
    """The engine's version as it reports it, or None when no engine answers."""
    return docker("version", "--format", "{{.Server.Version}}", timeout=timeout) or None


def docker_reachable(timeout: float = 5.0) -> bool:
    return engine_version(timeout) is not None


def compose_version(timeout: float = 10.0) -> tuple[int, ...] | None:
    """The version of the compose plugin (``docker compose``), or None when there is none."""
    printed = docker("compose", "version", "--short", timeout=timeout)
    return parse_version(printed) if printed else None


@functools.cache
def engine_needs_start_interval_override() -> bool:
    """Whether the engine answering now is older than 25 (asked once per process: it does not change)."""
    version = parse_version(engine_version() or "")
    return version is not None and version < START_INTERVAL_ENGINE_VERSION


def format_version(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def compose_problem() -> str | None:
    """Why the compose stack cannot run on this machine, or None when it can."""
    engine = engine_version()
    if engine is None:
        return "no Docker engine answers `docker version`"
    version = parse_version(engine)
    if version is None or version < MIN_ENGINE_VERSION:
        return f"the Docker engine is {engine} ({format_version(MIN_ENGINE_VERSION)} or newer needed)"
    plugin = compose_version()
    if plugin is None or plugin < MIN_COMPOSE_VERSION:
        found = "missing" if plugin is None else format_version(plugin)
        return f"the compose plugin is {found} ({format_version(MIN_COMPOSE_VERSION)} or newer needed)"
    return None
