"""``python -m sandbox up|down|status|ps|logs|doctor|stop|start`` (what ``make up``, ``make down``, ... run).

``up`` creates ``.env`` with fresh secrets on first use, then starts the compose stack
(``sandbox.compose``) when a Docker engine and the compose plugin answer, and native processes
(``sandbox.native``) otherwise. The other commands act on the mode that ``up`` chose, as recorded in
``.sandbox/endpoints.json``; with no record, on compose when an engine answers, else native.
``stop <component>`` and ``start <component>`` stop one component and start it again (waiting until
it is healthy), leaving the others alone: the fault tests use them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from sandbox import compose, doctor, native
from sandbox.env import ROOT, Settings, create_env_file, env_file_path, load_settings


def docker_reachable(timeout: float = 5.0) -> bool:
    """Whether ``docker info`` succeeds within ``timeout`` seconds."""
    if shutil.which("docker") is None:
        return False
    try:
        # The docker CLI from PATH, as a user would run it.
        info = subprocess.run(["docker", "info"], capture_output=True,  # noqa: S607
                              stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return info.returncode == 0


def compose_usable() -> bool:
    """A Docker engine answers and the compose plugin is recent enough; says why not when it is not."""
    if not docker_reachable():
        print("No Docker engine is reachable: starting native processes.")
        return False
    version = compose.compose_version()
    if version is None or version < compose.MIN_COMPOSE_VERSION:
        found = "missing" if version is None else ".".join(map(str, version))
        wanted = ".".join(map(str, compose.MIN_COMPOSE_VERSION))
        print(f"A Docker engine is reachable, but the compose plugin is {found} ({wanted} or newer needed): "
              "starting native processes. `make doctor` says more.")
        return False
    return True


def recorded_mode(s: Settings) -> str | None:
    """The mode of the running sandbox, from endpoints.json (None when nothing was started)."""
    try:
        return json.loads(native.endpoints_file(s).read_text()).get("mode")
    except (OSError, ValueError):
        return None


def current_mode(s: Settings) -> str:
    return recorded_mode(s) or ("compose" if docker_reachable() else "native")


def up() -> int:
    env_file = env_file_path()
    if create_env_file(ROOT / ".env.example", env_file):
        print(f"Created {env_file} from .env.example, with fresh secrets (mode 0600).")
    settings = load_settings()
    if missing := settings.missing_secrets():
        print(f"{env_file} has no value for {', '.join(missing)}: set one (or delete the file to have it "
              "created again with fresh secrets).", file=sys.stderr)
        return 2
    if recorded_mode(settings) == "native" or not compose_usable():
        return native.up(settings)
    return compose.up(settings)


def logs(s: Settings, service: str | None) -> int:
    if current_mode(s) == "compose":
        command = compose.compose_command(s, "logs", "--follow", "--tail", "100", *([service] if service else []))
        return subprocess.run(command, check=False).returncode  # noqa: S603 - our own argv
    files = sorted(s.logs_dir.glob(f"{service or '*'}.log")) + ([] if service else [s.logs_dir / "app.jsonl"])
    existing = [str(f) for f in files if f.exists()]
    if not existing:
        print(f"No logs under {s.logs_dir} yet: `make up` first.", file=sys.stderr)
        return 1
    os.execvp("tail", ["tail", "-n", "40", "-F", *existing])  # noqa: S606, S607 - replaces this process, as `make logs` expects


def one_component(s: Settings, mode: str, command: str, name: str | None) -> int:
    if not name:
        print(f"`{command}` needs the component (native) or service (compose) to {command}.", file=sys.stderr)
        return 2
    if mode == "compose":
        return compose.stop_service(s, name) if command == "stop" else compose.start_service(s, name)
    return native.stop_component(s, name) if command == "stop" else native.start_component(s, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="The local sandbox of the service.")
    parser.add_argument("command", choices=("up", "down", "status", "ps", "logs", "doctor", "stop", "start"))
    parser.add_argument("service", nargs="?", help="logs: only this service (compose) or component (native); "
                                                   "stop, start: the one to stop or start (required)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress before errors, even in a pipe
    if args.command == "up":
        return up()
    settings = load_settings()
    if args.command == "doctor":
        return doctor.main(settings)
    if args.command == "logs":
        return logs(settings, args.service)
    mode = current_mode(settings)
    if args.command in ("stop", "start"):
        return one_component(settings, mode, args.command, args.service)
    if args.command == "down":
        return compose.down(settings) if mode == "compose" else native.down(settings)
    return compose.status(settings) if mode == "compose" else native.status(settings)


if __name__ == "__main__":
    sys.exit(main())
