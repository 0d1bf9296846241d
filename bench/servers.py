"""gunicorn processes, one per variant, each with one sync worker on its own 127.0.0.1 port.

Project variants run under the product's own `app/gunicorn.conf.py` (preloaded app, the hooks that
wipe the multiprocess metrics directory, start the trace exporter after fork and serve /metrics from
the master); bare and seed run under gunicorn's defaults, as the seed design would.

A server's stdout and stderr go to one file opened with O_APPEND: a regular file, like the
`app.jsonl` Filebeat reads, so the kernel's copy of every line is paid as in production, while
/dev/null would hide it. The harness reads the bytes written per measurement (evidence that the
variant logs what it should) and truncates the file, so a run uses megabytes, not gigabytes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.variants import Variant
from sandbox.common import tail
from sandbox.net import LOOPBACK, free_port
from sandbox.otlp_receiver import OtlpReceiver

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_GUNICORN_CONF = ROOT / "app" / "gunicorn.conf.py"
WSGI_TARGET = "bench.apps.wsgi:app"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Variables of the caller's shell that the servers may see; everything else is set explicitly, so an
# exported OTEL_*, PROMETHEUS_* or GUNICORN_CMD_ARGS cannot change what is measured.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


@dataclass(frozen=True)
class Backends:
    """What every server is pointed at."""

    receiver: OtlpReceiver
    redis_url: str
    database_url: str | None


@dataclass
class Server:
    variant: Variant
    port: int
    metrics_port: int | None
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def take_log_bytes(self) -> int:
        """Bytes written to stdout/stderr since the last call; the file is emptied."""
        size = self.log.stat().st_size
        os.truncate(self.log, 0)
        return size

    def log_tail(self) -> str:
        return tail(self.log)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn for {self.variant.name} exited with {self.process.returncode}:\n"
                               f"{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the master (a graceful stop: workers finish and flush their spans), then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the master and its worker
                self.process.wait()


def _environment(variant: Variant, workdir: Path, backends: Backends, metrics_port: int | None) -> dict[str, str]:
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update({
        "BENCH_VARIANT": variant.name,
        "PYTHONUNBUFFERED": "1",
        # Read by the OTLP exporter of both the seed and the project: one receiver path per variant.
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": backends.receiver.endpoint(variant.name),
    })
    if backends.database_url:
        env["BENCH_DATABASE_URL"] = backends.database_url
    if variant.is_project:
        metrics_dir = workdir / f"metrics-{variant.name}"
        metrics_dir.mkdir()
        env.update({
            "REDIS_URL": backends.redis_url,
            # Must be set before Python starts: prometheus_client picks multiprocess mode on import.
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "METRICS_PORT": str(metrics_port),
            "METRICS_BIND_ADDRESS": LOOPBACK,
        })
    return env


def _command(variant: Variant, port: int) -> list[str]:
    gunicorn = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync",
                "--bind", f"{LOOPBACK}:{port}"]
    if variant.is_project:
        gunicorn += ["--config", str(PRODUCT_GUNICORN_CONF)]
    return [*gunicorn, WSGI_TARGET]


def start(variant: Variant, workdir: Path, backends: Backends) -> Server:
    """Starts the variant's gunicorn and waits until its `trivial` route answers."""
    port = free_port()
    metrics_port = free_port() if variant.is_project else None
    log = workdir / f"server-{variant.name}.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and arguments
            _command(variant, port),
            cwd=ROOT,  # gunicorn imports bench.apps.wsgi from here
            env=_environment(variant, workdir, backends, metrics_port),
            stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
            start_new_session=True,
        )
    finally:
        os.close(fd)
    server = Server(variant, port, metrics_port, log, process)
    try:
        _wait_answering(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_answering(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        server.check_alive()
        try:
            with urllib.request.urlopen(server.url("/trivial"), timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass  # refused while gunicorn boots
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn for {server.variant.name} did not answer within {START_TIMEOUT:.0f}s:\n"
                               f"{server.log_tail()}")
        time.sleep(0.1)


def scrape_request_count(server: Server) -> float | None:
    """The sum of `http_requests_total` on the master's metrics listener, or None without metrics."""
    if server.metrics_port is None:
        return None
    url = f"http://{LOOPBACK}:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("http_requests_total{"))
