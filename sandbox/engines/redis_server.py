"""redis-server from the local binary (Debian's ``redis-server`` package): the sandbox's Redis and
the integration tests' local provider. Bound to 127.0.0.1, no persistence (no RDB, no AOF)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sandbox.common import LOOPBACK, MissingToolError

# No RDB snapshots, no AOF: a restarted Redis is empty, and nothing is written to disk.
NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]


def find_binary() -> str:
    """The path of redis-server; raises MissingToolError when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingToolError("redis-server not found; install the package `redis-server`")
    return binary


def write_config(path: Path, password: str) -> Path:
    """A config file (mode 0600) with the password: on the command line, `ps` would show it."""
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f'requirepass "{escaped}"\n')
    return path


def argv(binary: str, port: int, workdir: Path, config: Path | None = None) -> list[str]:
    """The command line of a redis-server on 127.0.0.1:port working in ``workdir``."""
    head = [binary, str(config)] if config else [binary]  # the config file must come first
    return [*head, "--port", str(port), "--bind", LOOPBACK, *NO_PERSISTENCE, "--dir", str(workdir)]


def probe(host: str, port: int, password: str | None = None) -> Callable[[], None]:
    """A readiness probe: PING; raises while that fails."""

    def run() -> None:
        # No retries: the wait loop retries, and redis-py's default backoff would slow it down.
        with redis.Redis(
            host=host, port=port, password=password or None, socket_timeout=2, socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        ) as client:
            client.ping()

    return run
