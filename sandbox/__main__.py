"""``python -m sandbox up|down|status|ps|logs|doctor|stop|start`` (what ``make up``, ``make down``, ... run).

``up`` creates ``.env`` with fresh secrets on first use, then starts the compose stack
(``sandbox.compose``) or native processes (``sandbox.native``), as the mode says: ``--mode`` (``make up
MODE=...``), else SANDBOX_MODE (.env or the shell): ``compose``, ``native``, or ``auto`` (the default:
compose when a recent enough Docker engine and compose plugin answer, native otherwise). The other
commands act on the mode that ``up`` chose, as recorded in ``.sandbox/endpoints.json``; with no
record, on the mode chosen as ``up`` would. ``down --volumes`` also removes the compose stack's data
volumes (``make clean``).
``stop <component>`` and ``start <component>`` stop one component and start it again (waiting until
it is healthy), leaving the others alone: the fault tests use them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from sandbox import compose, docker_engine, doctor, native
from sandbox.env import ROOT, Settings, create_env_file, env_file_path, load_settings
from sandbox.urls import recorded_mode

MODES = ("auto", "compose", "native")


class ModeError(ValueError):
    """The mode asked for cannot run here; the message says why."""


def chosen_mode(asked: str, *, quiet: bool = False) -> str:
    """``compose`` or ``native`` for ``asked`` (one of MODES); ModeError when compose is asked for
    explicitly and cannot run."""
    if asked not in MODES:
        raise ModeError(f"unknown mode {asked!r} (SANDBOX_MODE or MODE=): one of {', '.join(MODES)}")
    if asked == "native":
        return "native"
    problem = docker_engine.compose_problem()
    if problem is None:
        return "compose"
    if asked == "compose":
        raise ModeError(f"compose mode asked for, but {problem}. `make doctor` says more.")
    if not quiet:
        print(f"Native processes: {problem} (`make doctor` says more; `make up MODE=native` skips this check).")
    return "native"


def current_mode(s: Settings, asked: str, *, quiet: bool = True) -> str:
    """The recorded mode of a running sandbox, else the one ``asked`` chooses; ModeError when a mode
    asked for explicitly is not the one running."""
    recorded = recorded_mode(s)
    if recorded is None:
        return chosen_mode(asked, quiet=quiet)
    if asked not in ("auto", recorded):
        raise ModeError(f"the sandbox of {s.state_dir} runs in {recorded} mode, not {asked}: `make down` first")
    return recorded


def asked_mode(args: argparse.Namespace, s: Settings) -> str:
    """The mode asked for: --mode (make's MODE=), else SANDBOX_MODE, else auto."""
    return args.mode or s.get("SANDBOX_MODE", "auto")


def up(args: argparse.Namespace) -> int:
    env_file = env_file_path()
    if create_env_file(ROOT / ".env.example", env_file):
        print(f"Created {env_file} from .env.example, with fresh secrets (mode 0600).")
    settings = load_settings()
    if missing := settings.missing_secrets():
        print(f"{env_file} has no value for {', '.join(missing)}: set one (or delete the file to have it "
              "created again with fresh secrets).", file=sys.stderr)
        return 2
    mode = current_mode(settings, asked_mode(args, settings), quiet=False)
    return compose.up(settings) if mode == "compose" else native.up(settings)


def logs(s: Settings, mode: str, service: str | None) -> int:
    if mode == "compose":
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
    parser.add_argument("--mode", choices=MODES, help="compose, native or auto (default: SANDBOX_MODE, else auto)")
    parser.add_argument("--volumes", action="store_true", help="down: also remove the compose stack's data volumes")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress before errors, even in a pipe
    try:
        return _command(args)
    except ModeError as exc:
        print(exc, file=sys.stderr)
        return 2


def _command(args: argparse.Namespace) -> int:
    if args.command == "up":
        return up(args)
    settings = load_settings()
    if args.command == "doctor":
        return doctor.main(settings, asked_mode(args, settings))
    mode = current_mode(settings, asked_mode(args, settings))
    if args.command == "logs":
        return logs(settings, mode, args.service)
    if args.command in ("stop", "start"):
        return one_component(settings, mode, args.command, args.service)
    if args.command == "down":
        return compose.down(settings, volumes=args.volumes) if mode == "compose" else native.down(settings)
    return compose.status(settings) if mode == "compose" else native.status(settings)


if __name__ == "__main__":
    sys.exit(main())
