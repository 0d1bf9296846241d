"""Integration fixtures: the service against real PostgreSQL, Redis and Celery worker processes,
with local receivers for what it sends out (OTLP spans, webhook posts, e-mail)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from observability import ObservabilityConfig
from sandbox.net import free_port
from sandbox.webhook_sink import WebhookSink
from service import create_app
from service.settings import ServiceSettings
from tests.support.logs import read_log_file
from tests.support.otlp_sink import OtlpSink
from tests.support.smtp_sink import SmtpSink

APP_DIR = Path(__file__).resolve().parents[2] / "app"
ADMIN_TOKEN = "integration-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink().start_background()
    yield sink
    sink.shutdown()
    sink.server_close()


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def service_env(postgres_dsn: str, redis_url: str, otlp_sink: OtlpSink, webhook_sink: WebhookSink,
                smtp_sink: SmtpSink) -> dict[str, str]:
    """Environment of every service process in these tests (web and worker)."""
    redis_base = redis_url.rsplit("/", 1)[0]
    return {
        "DATABASE_URL": postgres_dsn,
        "REDIS_URL": f"{redis_base}/0",
        "CELERY_BROKER_URL": f"{redis_base}/1",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "AI_LATENCY_MS": "0",
        "CHAOS_REFRESH_SECONDS": "0.2",
        "ALERT_WEBHOOK_URL": f"{webhook_sink.url}/hook",
        "ALERT_EMAIL_TO": "ops@example.test",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_sink.port),
        "NOTIFY_BACKOFF_MAX_SECONDS": "2",
        "NOTIFY_TIMEOUT_SECONDS": "2",  # an attempt's time limit: 6 s
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.url,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "DEPLOYMENT_ENVIRONMENT": "integration",
    }


@pytest.fixture
def clean_state(service_env: dict[str, str], webhook_sink: WebhookSink, smtp_sink: SmtpSink) -> None:
    """Every test starts with empty app state in Redis (dedupe claims, knobs, aggregates) and empty
    sinks. The broker's database is left alone: the worker's queue bindings live there."""
    redis.Redis.from_url(service_env["REDIS_URL"]).flushdb()
    requests.delete(f"{webhook_sink.url}/messages", timeout=5)
    smtp_sink.messages.clear()
    smtp_sink.recorder.reject_with = None


@pytest.fixture
def app(service_env: dict[str, str], tracer_provider: Any, clean_state: None) -> Any:
    env = {**os.environ, **service_env}
    return create_app(ServiceSettings.from_env(env), ObservabilityConfig.from_env(env))


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    port: int = 0

    def records(self) -> list[dict[str, Any]]:
        """Every line the process wrote; a line that is not one JSON object fails the test."""
        try:
            return read_log_file(self.log_path)
        except ValueError as error:
            raise AssertionError(f"non-JSON output: {error}\n{self.log_path.read_text()[-3000:]}") from None

    def wait_for_record(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.records():
                if predicate(record):
                    return record
            if self.process.poll() is not None:
                tail = self.log_path.read_text()[-3000:]
                raise AssertionError(f"process exited with {self.process.returncode}:\n{tail}")
            time.sleep(0.1)
        raise AssertionError(f"no matching record within {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    return subprocess.Popen(args, cwd=APP_DIR, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real Celery worker (prefork pool, two children) on the session's Redis and PostgreSQL."""
    workdir = tmp_path_factory.mktemp("worker")
    metrics_port = free_port()
    (workdir / "metrics").mkdir()  # prometheus_client writes there from import time on
    env = {**service_env, "WORKER_METRICS_PORT": str(metrics_port),
           "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")}
    # --quiet (a global option, before the command): no start-up banner, which is not a log record.
    args = [sys.executable, "-m", "celery", "--quiet", "-A", "service.worker:celery_app", "worker",
            "--pool", "prefork", "--concurrency", "2", "--without-heartbeat", "--without-gossip",
            "--without-mingle", "--hostname", "itest@%h"]
    server = ServerProcess(start_process(args, env, workdir / "worker.log"), workdir / "worker.log", metrics_port)
    try:
        server.wait_for_record(lambda r: r["logger"].startswith("celery") and "ready" in r["message"])
        yield server
    finally:
        server.stop()


def wait_until(condition: Any, timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s")
