"""What the servers under test talk to: Redis, PostgreSQL and an OTLP/HTTP receiver that discards.

Redis and PostgreSQL are Debian's binaries started the way the sandbox starts them
(`sandbox.redis_server`, `sandbox.postgres`), on free 127.0.0.1 ports in temporary directories,
and deleted afterwards. The trace receiver answers every export at once so the exporters' real work
(batching, protobuf encoding, the HTTP request) is counted and the collector's is not.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import tempfile
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox import postgres as pg
from sandbox import redis_server
from sandbox.common import LOOPBACK, tail, wait_ready

READY_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@contextmanager
def redis(workdir: Path) -> Iterator[str]:
    """A throwaway redis-server (no persistence); yields its URL."""
    port = free_port()
    log = workdir / "redis.log"
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(  # noqa: S603 - redis-server with our own arguments
            redis_server.argv(redis_server.find_binary(), port, workdir),
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(redis_server.probe(LOOPBACK, port), "Redis", lambda: tail(log),
                   exited=lambda: process.poll() is not None, timeout=READY_TIMEOUT)
        yield f"redis://{LOOPBACK}:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields its SQLAlchemy URL.

    Its home is in the system temp dir: as root, PostgreSQL runs as `postgres`, which must reach it.
    Durability is off: the benchmark only reads, and a cluster that lives for minutes needs none.
    """
    owner = pg.system_user()
    home = pg.make_home(Path(tempfile.mkdtemp(prefix="bench-pg-")), owner)
    cluster = pg.PostgresCluster(pg.find_bindir(), home, free_port(), secrets.token_hex(16), owner,
                                 tuning={"fsync": "off", "synchronous_commit": "off"}, timeout=READY_TIMEOUT)
    try:
        cluster.create()
        yield cluster.dsn
    finally:
        cluster.destroy()


@dataclass
class ExportCounts:
    """What one exporter (one path on the receiver) sent."""

    requests: int = 0
    bytes: int = 0


@dataclass
class DiscardingReceiver:
    """An OTLP/HTTP receiver on 127.0.0.1: reads each export, counts it per path, answers 200 with an
    empty ExportTraceServiceResponse (zero bytes of protobuf)."""

    port: int = 0
    counts: dict[str, ExportCounts] = field(default_factory=lambda: defaultdict(ExportCounts))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def endpoint(self, name: str) -> str:
        """The traces URL one exporter should use; exports are counted under `name`."""
        return f"http://{LOOPBACK}:{self.port}/{name}/v1/traces"

    def record(self, path: str, size: int) -> None:
        name = path.strip("/").split("/", 1)[0]
        with self._lock:
            counts = self.counts[name]
            counts.requests += 1
            counts.bytes += size


class _DiscardHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # exporters keep their connection open, as with a real collector
    receiver: DiscardingReceiver

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(size)
        self.receiver.record(self.path, size)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per export would be noise on the harness's output


@contextmanager
def discarding_receiver() -> Iterator[DiscardingReceiver]:
    receiver = DiscardingReceiver()
    handler = type("Handler", (_DiscardHandler,), {"receiver": receiver})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="otlp-discard", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
