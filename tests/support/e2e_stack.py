"""The stacks the end-to-end tests run against: the compose stack and the native sandbox.

``start_provider(mode)`` starts one of them for the session:

- ``compose``: a compose project of the tests' own (``COMPOSE_PROJECT_NAME=obs-e2e-<random>``),
  started with ``python -m sandbox up --mode compose`` and removed at the end with its volumes
  (``down --volumes``). With E2E_USE_RUNNING_STACK=1, the user's compose stack instead, when
  ``.sandbox/endpoints.json`` describes one whose app answers: used as it is (the fault tests stop
  and start its parts, the tests write into its database) and left running. ``ProviderUnavailable`` when no Docker
  engine with a recent enough compose plugin answers, or the app's base image is neither on this
  machine nor pullable (``make images`` builds it where there is no registry).
- ``native``: a native sandbox of its own, always stopped and deleted at the end.

Either way the tests' own stack gets a temporary ``SANDBOX_DIR`` and ``.env`` (``SANDBOX_ENV_FILE``,
created from ``.env.example`` with fresh secrets) and a free port for every ``*_PORT`` variable of
``.env.example``, all passed in the environment, which wins over ``.env``; so it never meets the
user's sandbox nor another test's servers.

Tests ask for endpoints by the names of ``endpoints.json`` (``app``, ``prometheus``, ``jaeger``,
``app_log_file``, ...); credentials in a URL are split out into ``auth``. The fault tests stop and
start one component (``stop_component``/``start_component``: ``python -m sandbox stop|start``, which
is ``docker compose stop|up --wait`` in compose), list and kill the app's gunicorn workers and read
the app's own metrics listener, the same way in either mode.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests

from sandbox import docker_engine
from sandbox.compose import compose_command, compose_files, not_buildable
from sandbox.engines import processes
from sandbox.env import ROOT, Settings, load_settings, parse_env
from sandbox.net import free_port
from sandbox.urls import compose_endpoints, compose_service, read_endpoints
from tests.support.e2e_clients import LogFile, session

# What the native sandbox offers (README: The native sandbox): in CI, one of these missing natively is a failure.
NATIVE_ENDPOINTS = ("app", "metrics", "worker_metrics", "prometheus", "alertmanager", "jaeger", "jaeger_otlp",
                    "elasticsearch", "mailpit", "smtp", "webhook_sink", "postgres", "redis", "app_log_file")
OTEL_COLLECTOR_EXTENSION = "extensions/otel-collector/docker-compose.otel-collector.yml"
# In the app's container: stdin appended, in one write, to the file argv[1] in the folder of the app's
# LOG_FILE (O_APPEND: never inside one of the app's own lines, which a pipe-sized `cat` could split).
_APPEND_STDIN = """
import os, sys
path = os.path.join(os.path.dirname(os.environ["LOG_FILE"]), sys.argv[1])
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
os.write(fd, sys.stdin.buffer.read())
"""
COMPONENT_TIMEOUT = 300  # seconds a stop or a start (with the wait until healthy) may take
# In the app's container: the gunicorn workers (children of the master, PID 1), or SIGKILL one of
# them; compose publishes no pid, so the question is asked inside the container.
_GUNICORN_WORKERS = """
import os, signal, sys
def parent(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])
workers = []
for entry in os.listdir("/proc"):
    try:
        if entry.isdigit() and parent(int(entry)) == 1:
            workers.append(int(entry))
    except OSError:
        pass
if len(sys.argv) > 1:
    os.kill(int(sys.argv[1]), signal.SIGKILL)
print(" ".join(map(str, sorted(workers))))
"""
_APP_METRICS = ("import urllib.request; "
                "print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=10).read().decode())")
# A first compose `up` builds the app image (and pulls every other one where a registry answers); the
# native start with Elasticsearch takes 30-60 s on two cores, plus the Go tools' build check.
COMPOSE_UP_TIMEOUT = 1800
PROVIDERS = ("compose", "native")
# The first native start on a machine also downloads Elasticsearch (up to 15 minutes allowed there).
NATIVE_UP_TIMEOUT = 1500
DOWN_TIMEOUT = 300
NATIVE_START_TIMEOUT = "180"  # seconds per component inside `up` (Elasticsearch's JVM is the slow one)


class ProviderError(RuntimeError):
    """The chosen provider could not be started; the message has its output."""


class ProviderUnavailable(ProviderError):  # noqa: N818 - pairs with ServiceUnavailable
    """Nothing can provide the stack on this machine (no Docker engine, native programs missing)."""


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> None:
    """Skip a test of a stack of its own that cannot run here; in CI, where it must run, fail instead."""
    if in_ci():
        pytest.fail(f"CI=true, so this may not skip: {reason}", pytrace=False)
    pytest.skip(reason)


def port_keys(example: Path = ROOT / ".env.example") -> list[str]:
    """Every port variable of .env.example: the native sandbox under test gets a free port for each."""
    return sorted(key for key in parse_env(example.read_text()) if key.endswith("_PORT"))


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def split_credentials(endpoints: dict[str, str]) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """``http://user:pw@host:port`` -> ``http://host:port`` and ``(user, pw)``; other values unchanged."""
    urls, auth = {}, {}
    for key, url in endpoints.items():
        parts = urlsplit(url)
        if parts.scheme.startswith("http") and parts.username:
            auth[key] = (unquote(parts.username), unquote(parts.password or ""))
            urls[key] = parts._replace(netloc=f"{parts.hostname}:{parts.port}").geturl()
        else:
            urls[key] = url
    return urls, auth


@dataclass
class Provider:
    """A running stack: its mode, endpoints (credentials split out), settings and how to drive it."""

    mode: str  # "compose" or "native"
    endpoints: dict[str, str]
    settings: Settings
    env: dict[str, str]  # the environment `python -m sandbox` runs with for this stack
    owned: bool  # started by the tests: stopped by them
    temp_root: Path | None = None  # the native sandbox's temporary directory
    urls: dict[str, str] = field(init=False)
    auth: dict[str, tuple[str, str]] = field(init=False)

    left_out: dict[str, str] = field(init=False)  # compose services not started, with the reason

    def __post_init__(self) -> None:
        self.endpoints.pop("mode", None)
        self.left_out = self.endpoints.pop("left_out", None) or {}
        self.urls, self.auth = split_credentials(self.endpoints)

    def has(self, key: str) -> bool:
        return key in self.urls

    def url(self, key: str) -> str:
        return self.urls[key]

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def admin_headers(self) -> dict[str, str]:
        return admin_headers(self.settings)

    def sandbox(self, command: str, timeout: float, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sandbox", command, *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def _component(self, command: str, name: str) -> str:
        service = compose_service(name) if self.mode == "compose" else name
        done = self.sandbox(command, COMPONENT_TIMEOUT, service)
        if done.returncode != 0:
            raise ProviderError(f"`python -m sandbox {command} {service}` failed ({done.returncode}):\n"
                                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def stop_component(self, name: str) -> str:
        """Stop one component (native name; compose: its service); the others keep running."""
        return self._component("stop", name)

    def start_component(self, name: str) -> str:
        """Start a stopped component again and wait until it is healthy."""
        return self._component("start", name)

    def log_shipper(self) -> tuple[str, ...]:
        """What ships the app's log file to Elasticsearch, reader first: the OpenTelemetry Collector
        natively and with the compose extension, else Filebeat and Logstash."""
        if self.mode == "native":
            return ("otelcol",)
        if OTEL_COLLECTOR_EXTENSION in compose_files(self.settings):
            return ("otel-collector",)
        return ("filebeat", "logstash")

    def kill_log_shipper(self) -> None:
        """SIGKILL the program that reads the log file: no chance to flush or to store its position."""
        reader = self.log_shipper()[0]
        if self.mode == "compose":
            done = self.compose("kill", "--signal", "SIGKILL", reader, timeout=60)
            if done.returncode != 0:
                raise ProviderError(f"`docker compose kill {reader}` failed: {done.stderr[-2000:]}")
            return
        pid = processes.read_pidfile(self.settings.pidfile(reader))
        if pid is None:
            raise ProviderError(f"the native {reader} is not running (no live pid file)")
        os.killpg(pid, signal.SIGKILL)

    def start_log_shipper(self) -> None:
        self.start_component(self.log_shipper()[0])

    def append_app_log(self, lines: list[str], file_name: str = "app.jsonl") -> None:
        """Append whole lines, in one write, to the app's log file (where the app writes too) or to
        another file beside it that the shippers read as well (``app.jsonl*``)."""
        data = "".join(f"{line}\n" for line in lines).encode()
        if self.has("app_log_file"):
            fd = os.open(Path(self.url("app_log_file")).with_name(file_name), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                         0o640)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            return
        command = compose_command(self.settings, "exec", "-T", "app", "python", "-c", _APPEND_STDIN, file_name)
        done = subprocess.run(command, input=data, env=self.env, capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ProviderError(f"appending to {file_name} in the app's container failed: {done.stderr[-2000:]!r}")

    def web_workers(self) -> list[int]:
        """The pids of the app's gunicorn workers (inside its container in compose)."""
        if self.mode == "compose":
            return [int(pid) for pid in self.in_app("python", "-c", _GUNICORN_WORKERS).split()]
        master = self.web_master()
        return sorted(pid for pid in processes.group_members(master) if _parent(pid) == master)

    def web_master(self) -> int:
        """The gunicorn master's pid (native only: compose runs it as its container's PID 1)."""
        master = processes.read_pidfile(self.settings.pidfile("app"))
        if master is None:
            raise ProviderError("the native app is not running (no live pid file)")
        return master

    def kill_web_worker(self, pid: int) -> None:
        """SIGKILL one gunicorn worker, as the kernel's OOM killer would."""
        if self.mode == "compose":
            self.in_app("python", "-c", _GUNICORN_WORKERS, str(pid))
        else:
            os.kill(pid, signal.SIGKILL)

    def app_metrics(self) -> str:
        """The app's /metrics text, from its own listener (compose: from inside its container)."""
        if self.mode == "compose":
            return self.in_app("python", "-c", _APP_METRICS).decode(errors="replace")
        response = session().get(f"{self.url('metrics')}/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def app_log(self, offset: int | None = None) -> LogFile | None:
        """The app's JSON log from ``offset`` on (None: from its end now), where the tests read records:
        the file natively; in compose the file the shipper reads, when there is no Elasticsearch to
        search (None when there is)."""
        if self.has("app_log_file"):
            path = Path(self.url("app_log_file"))
            return LogFile.from_end(path) if offset is None else LogFile(path, offset)
        if self.mode == "compose" and not self.has("elasticsearch"):
            log = ContainerLogFile(self, 0)
            log.offset = log.size() if offset is None else offset
            return log
        return None

    def in_app(self, *command: str) -> bytes:
        """What ``command`` prints in the app's container (compose)."""
        done = subprocess.run(compose_command(self.settings, "exec", "-T", "app", *command), env=self.env,
                              capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ProviderError(f"`docker compose exec app {command[0]} ...` failed: {done.stderr[-2000:]!r}")
        return done.stdout

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``docker compose ARGS`` on this stack (its project name and .env come from ``env``)."""
        return subprocess.run(compose_command(self.settings, *args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def require(self, *services: str) -> None:
        """Skip the calling test, with the reason, when a compose service it needs was left out."""
        if left := [service for service in services if service in self.left_out]:
            pytest.skip("; ".join(f"{service} is left out: {self.left_out[service]}" for service in left))

    def missing_reason(self, name: str) -> str:
        """Why this provider has no endpoint ``name`` (compose: the service left out, if it was)."""
        reason = f"not in this provider: {self.mode} (no {name!r} endpoint)"
        if self.mode == "compose" and self.left_out:
            services = {endpoint.key: service for service, endpoint in compose_endpoints(self.settings)}
            if (service := services.get(name)) in self.left_out:
                reason += f": {service} is left out, {self.left_out[service]}"
        return reason

    def stop(self, keep_logs: Path | None = None) -> str:
        """Stop what the tests started (nothing otherwise); the output of `down`. A native sandbox's
        logs are copied to ``keep_logs`` first (its directory is deleted)."""
        if not self.owned:
            return ""
        if keep_logs is not None and self.mode == "compose":
            keep_logs.mkdir(parents=True, exist_ok=True)
            (keep_logs / "compose.log").write_text(self.compose("logs", "--no-color", "--timestamps").stdout)
        try:
            done = self.sandbox("down", DOWN_TIMEOUT, "--mode", self.mode, "--volumes")
            return done.stdout + done.stderr
        finally:
            if self.temp_root is not None:
                if keep_logs is not None and self.mode == "native" and self.settings.logs_dir.is_dir():
                    shutil.rmtree(keep_logs, ignore_errors=True)
                    shutil.copytree(self.settings.logs_dir, keep_logs)
                if not os.environ.get("E2E_KEEP_SANDBOX"):
                    shutil.rmtree(self.temp_root, ignore_errors=True)


class ContainerLogFile(LogFile):
    """The app's log file (LOG_FILE of its container: the file the log shipper reads) inside the compose
    stack's app container, read with `docker compose exec`."""

    def __init__(self, provider: Provider, offset: int) -> None:
        super().__init__(Path("$LOG_FILE"), offset)
        self.provider = provider

    def size(self) -> int:
        """Its size now; 0 while the app has written nothing yet (as ``LogFile.from_end``)."""
        return int(self.provider.in_app("sh", "-c", 'stat --format=%s "$LOG_FILE" 2>/dev/null || echo 0'))

    def read_from_offset(self) -> bytes:
        return self.provider.in_app("sh", "-c", f'tail --bytes=+{self.offset + 1} "$LOG_FILE" 2>/dev/null || true')


def _parent(pid: int) -> int | None:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _running_compose(settings: Settings) -> dict[str, str] | None:
    endpoints = read_endpoints(settings)
    if endpoints.get("mode") != "compose" or "app" not in endpoints:
        return None
    try:
        ready = session().get(f"{endpoints['app']}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return None
    return endpoints if ready else None


def start_provider(mode: str) -> Provider:
    """The stack of ``mode`` (one of PROVIDERS), started for the tests unless the user's compose stack runs."""
    if mode == "native":
        return _start_native()
    settings = load_settings()
    if os.environ.get("E2E_USE_RUNNING_STACK") == "1" and (running := _running_compose(settings)) is not None:
        return Provider("compose", dict(running), settings, {**os.environ}, owned=False)
    return _start_compose()


def app_base_image(dockerfile: Path = ROOT / "app" / "Dockerfile") -> str:
    """The image app/Dockerfile builds on (its PYTHON_IMAGE argument's default)."""
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise ProviderError(f"{dockerfile} has no ARG PYTHON_IMAGE= line")
    return match[1]


def _image_problem() -> str | None:
    """Why the compose stack's app image cannot be built here, or None (pulled where a registry answers)."""
    base = app_base_image()
    if (docker_engine.docker("image", "inspect", base) is not None
            or docker_engine.docker("pull", "--quiet", base, timeout=600)):
        return None
    return f"the app's base image {base} is not on this machine and cannot be pulled: `make images` builds it"


def admin_headers(settings: Settings) -> dict[str, str]:
    """The header the app's /admin endpoints want, for a stack with these settings."""
    return {"Authorization": f"Bearer {settings.admin_token}"}


def _own_stack_env(root: Path, mode: str, **extra: str) -> dict[str, str]:
    """The environment of a stack of the tests' own under ``root``: its .env, state, free ports and
    mode (so that no command meant for it can reach the user's stack)."""
    keys = port_keys()
    ports = dict(zip(keys, _distinct_free_ports(len(keys)), strict=True))
    env = {**os.environ, "SANDBOX_DIR": str(root / "state"), "SANDBOX_ENV_FILE": str(root / ".env"),
           **{key: str(port) for key, port in ports.items()}, **extra}
    env["SANDBOX_MODE"] = mode
    return env


def _start_compose() -> Provider:
    if (problem := docker_engine.compose_problem() or _image_problem()) is not None:
        raise ProviderUnavailable(problem)
    root = Path(tempfile.mkdtemp(prefix="e2e-compose-"))
    env = _own_stack_env(root, "compose", COMPOSE_PROJECT_NAME=f"obs-e2e-{secrets.token_hex(4)}")
    provider = _start_own(root, env, COMPOSE_UP_TIMEOUT, lambda settings: subprocess.run(
        compose_command(settings, "ps", "--all"), env=env, capture_output=True, text=True, check=False).stdout)
    unexpected = sorted(set(provider.left_out) - set(not_buildable(ROOT)) - _dependents(provider.left_out))
    if unexpected and in_ci():  # `make images` ran: only what it cannot build may be missing
        provider.stop()
        raise ProviderError(f"CI=true and compose left out {unexpected}, which `make images` builds: "
                            f"{ {name: provider.left_out[name] for name in unexpected} }")
    return provider


def _start_own(root: Path, env: dict[str, str], timeout: float, diagnose: Callable[[Settings], str]) -> Provider:
    """`python -m sandbox up` for a stack of the tests' own (its mode in ``env``); when it fails, the
    stack is removed and ProviderError carries its output and ``diagnose``'s."""
    mode = env["SANDBOX_MODE"]
    command = [sys.executable, "-m", "sandbox", "up", "--mode", mode]
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        _remove_own_stack(env, root)
        raise ProviderError(f"`python -m sandbox up --mode {mode}` did not finish within {timeout}s:\n"
                            f"{_text(exc.stdout)[-4000:]}\n{_text(exc.stderr)[-4000:]}") from None
    settings = load_settings(environ=env)
    endpoints = read_endpoints(settings)
    if done.returncode != 0 or endpoints.get("mode") != mode:
        diagnosis = diagnose(settings)
        _remove_own_stack(env, root)
        raise ProviderError(f"`python -m sandbox up --mode {mode}` failed ({done.returncode}):\n"
                            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n{diagnosis}")
    return Provider(mode, endpoints, settings, env, owned=True, temp_root=root)


def _dependents(left_out: dict[str, str]) -> set[str]:
    """The services left out only because a service they need was (sandbox.compose.plan's reason)."""
    return {service for service, reason in left_out.items() if reason.startswith("needs ")}


def native_programs_problem() -> str | None:
    """Why the native sandbox cannot start here (`make doctor`'s check of its programs), or None."""
    from sandbox import doctor

    check = doctor.check_native_programs()
    return None if check.verdict != "fail" else check.detail


def _start_native() -> Provider:
    if problem := native_programs_problem():
        raise ProviderUnavailable(f"the native sandbox lacks programs: {problem}")
    # As root, PostgreSQL and Elasticsearch run as other users, which cannot enter pytest's private
    # temporary directories: the state goes to a world-traversable one, as .sandbox/ in a checkout.
    root = Path(tempfile.mkdtemp(prefix="e2e-sandbox-"))
    root.chmod(0o755)
    timeout = os.environ.get("E2E_START_TIMEOUT", NATIVE_START_TIMEOUT)
    env = _own_stack_env(root, "native", SANDBOX_START_TIMEOUT=timeout)
    env.pop("COMPOSE_FILE", None)
    return _start_own(root, env, NATIVE_UP_TIMEOUT, _log_tails)


def _text(output: Any) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _log_tails(settings: Settings, lines: int = 12, width: int = 300) -> str:
    """The end of each component's log, for a failed start (the whole logs are deleted with it)."""
    parts = []
    for log in sorted(settings.logs_dir.glob("*.log")):
        text = [line[:width] for line in log.read_text(errors="replace").splitlines()[-lines:]]
        if text:
            parts.append(f"--- {log.name} ---\n" + "\n".join(text))
    return "\n".join(parts)


def _remove_own_stack(env: dict[str, str], root: Path) -> None:
    subprocess.run([sys.executable, "-m", "sandbox", "down", "--mode", env["SANDBOX_MODE"], "--volumes"], cwd=ROOT,
                   env=env, capture_output=True, text=True, timeout=DOWN_TIMEOUT, check=False)
    if not os.environ.get("E2E_KEEP_SANDBOX"):
        shutil.rmtree(root, ignore_errors=True)
