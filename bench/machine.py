"""What the figures were measured on: the machine, and the versions of everything measured."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.load import wrk_version

PACKAGES = (
    "flask", "werkzeug", "gunicorn", "opentelemetry-sdk", "opentelemetry-instrumentation-flask",
    "opentelemetry-exporter-otlp-proto-http", "prometheus-client", "python-json-logger", "orjson",
    "sqlalchemy", "psycopg", "redis",
)


def describe_machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "os": _os_release(),
        "memory_mb": _memory_mb(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def versions(postgresql: str | None) -> dict[str, str]:
    found = {name: _package_version(name) for name in PACKAGES}
    found["wrk"] = wrk_version()
    found["redis-server"] = _redis_server_version()
    if postgresql:
        found["postgresql"] = postgresql
    return found


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _redis_server_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    # "Redis server v=7.0.15 sha=... malloc=jemalloc-5.3.0 bits=64 build=..."
    for part in done.stdout.split():
        if part.startswith("v="):
            return part.removeprefix("v=")
    return done.stdout.strip() or "unknown"
