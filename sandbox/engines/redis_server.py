"""redis-server from the local binary (Debian's ``redis-server`` package), bound to 127.0.0.1: the
sandbox's Redis (``SANDBOX_RUNNER``), which keeps its keys across a restart, and the throwaway
servers of the integration tests and the benchmarks (``LocalRedis``), which keep nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sandbox.common import MissingToolError, tail, wait_ready
from sandbox.engines.processes import Spawned
from sandbox.env import Settings
from sandbox.net import LOOPBACK, free_port

# No RDB snapshots, no AOF: a restarted Redis is empty, and nothing is written to disk.
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
# Every write appended to a file in the working directory, synced once a second (a crash loses at
# most that second); no RDB snapshots besides. A restarted Redis still has the alert claims (without
# them an error notified before the restart is notified again) and the broker's queued tasks.
APPEND_ONLY = ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec")
_STOP_TIMEOUT = 10.0


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


def argv(binary: str, port: int, workdir: Path, config: Path | None = None, *, persistent: bool = False) -> list[str]:
    """The command line of a redis-server on 127.0.0.1:port working in ``workdir``, which holds its
    append-only file when ``persistent``."""
    head = [binary, str(config)] if config else [binary]  # the config file must come first
    persistence = APPEND_ONLY if persistent else NO_PERSISTENCE
    return [*head, "--port", str(port), "--bind", LOOPBACK, *persistence, "--dir", str(workdir)]


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


# --- the sandbox's Redis --------------------------------------------------------------------------


def _prepare_home(s: Settings) -> None:
    s.home("redis").mkdir(mode=0o700, parents=True, exist_ok=True)
    write_config(s.home("redis") / "redis.conf", s.redis_password)


def _sandbox_argv(s: Settings) -> list[str]:
    home = s.home("redis")
    return argv(find_binary(), s.redis_port, home, home / "redis.conf", persistent=True)


SANDBOX_RUNNER = Spawned(_sandbox_argv, prepare=_prepare_home)


def health(s: Settings) -> None:
    """Raises unless the sandbox's Redis answers a PING with its password."""
    probe(LOOPBACK, s.redis_port, s.redis_password)()


# --- throwaway servers ----------------------------------------------------------------------------


class LocalRedis:
    """redis-server as a child process, without password or persistence; its port and directory stay
    the same across stop()/start(), close() deletes the directory."""

    def __init__(self, binary: str, home: Path, port: int, timeout: float) -> None:
        self.port = port
        self._binary = binary
        self._home = home
        self._log = home / "redis.log"
        self._timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False

    @classmethod
    def start_new(cls, workdir: Path, timeout: float = 30.0) -> LocalRedis:
        """A running server on a free port, in a new directory under ``workdir``."""
        binary = find_binary()  # MissingToolError before anything is made
        server = cls(binary, Path(tempfile.mkdtemp(prefix="redis-", dir=workdir)), free_port(), timeout)
        try:
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        """Start the server unless it runs, and wait until it answers."""
        if self._process is None or self._process.poll() is not None:
            with self._log.open("ab") as log:  # the child keeps its own copy of the descriptor
                self._process = subprocess.Popen(  # noqa: S603 - redis-server with our own arguments
                    argv(self._binary, self.port, self._home), cwd=self._home, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT,
                )
        process = self._process
        wait_ready(probe(LOOPBACK, self.port), "Redis", lambda: tail(self._log),
                   exited=lambda: process.poll() is not None, timeout=self._timeout)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown, with nothing to save), SIGKILL if it does not exit in time."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the server and delete its directory; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            shutil.rmtree(self._home, ignore_errors=True)
