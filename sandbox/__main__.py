"""``python -m sandbox up|down|status`` (what ``make up``, ``make down`` and ``make status`` run).

``up`` creates ``.env`` with fresh secrets on first use, then starts the sandbox. The compose stack
arrives with a later issue: until then the sandbox runs as native processes (``sandbox.native``),
with or without a Docker engine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from sandbox import native
from sandbox.env import ROOT, create_env_file, env_file_path, load_settings


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


def up() -> int:
    env_file = env_file_path()
    if create_env_file(ROOT / ".env.example", env_file):
        print(f"Created {env_file} from .env.example, with fresh secrets (mode 0600).")
    settings = load_settings()
    if missing := settings.missing_secrets():
        print(f"{env_file} has no value for {', '.join(missing)}: set one (or delete the file to have it "
              "created again with fresh secrets).", file=sys.stderr)
        return 2
    if docker_reachable():
        print("A Docker engine is reachable, but the compose stack arrives with a later issue: "
              "starting native processes.")
    else:
        print("No Docker engine is reachable: starting native processes.")
    return native.up(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="The local sandbox of the service.")
    parser.add_argument("command", choices=("up", "down", "status"))
    command = parser.parse_args(argv).command
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress before errors, even in a pipe
    if command == "up":
        return up()
    settings = load_settings()
    return native.down(settings) if command == "down" else native.status(settings)


if __name__ == "__main__":
    sys.exit(main())
