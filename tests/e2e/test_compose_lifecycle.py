"""The compose stack's life as `make up`/`make down`/`make clean` drive it, on the tests' own project:
a second `up` changes nothing, a container whose process dies is restarted by the engine, `down`
leaves no container, network or anonymous volume (the named data volumes stay) and `down --volumes`
removes those too.

Runs last in the compose provider's group (tests/e2e/conftest.py), since it ends the stack. The
native sandbox's equivalents are in tests/integration/test_native_sandbox.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest

from sandbox import docker_engine
from tests.support.e2e_clients import session
from tests.support.e2e_stack import Provider
from tests.support.faults import Reliability
from tests.support.visibility import wait_for

UP_TIMEOUT = 600
RESTART_TIMEOUT = 120


@pytest.fixture(scope="module")
def own_stack(provider: Provider) -> Provider:
    if provider.mode != "compose":
        pytest.skip("compose only: the native sandbox's lifecycle is tests/integration/test_native_sandbox.py")
    if not provider.owned:
        pytest.skip("the user's own compose stack is running: these tests would stop it")
    return provider


def _docker(*args: str) -> str:
    out = docker_engine.docker(*args)
    assert out is not None, f"`docker {' '.join(args)}` failed"
    return out


def _project(stack: Provider) -> str:
    return stack.env["COMPOSE_PROJECT_NAME"]


def _containers(stack: Provider) -> list[dict[str, Any]]:
    ids = _docker("ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={_project(stack)}").split()
    return json.loads(_docker("inspect", *ids)) if ids else []


def _by_service(stack: Provider) -> dict[str, dict[str, Any]]:
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in _containers(stack)}


def _up(stack: Provider) -> dict[str, tuple[str, str]]:
    """`make up`, then each service's container id and start time."""
    done = stack.sandbox("up", UP_TIMEOUT, "--mode", "compose")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {name: (c["Id"], c["State"]["StartedAt"]) for name, c in _by_service(stack).items()}


def test_a_second_up_changes_nothing(own_stack: Provider) -> None:
    # The first brings back what earlier tests stopped on purpose (the load generator).
    before = _up(own_stack)
    assert _up(own_stack) == before  # not one container recreated or restarted


def test_a_container_whose_process_dies_is_restarted(own_stack: Provider, reliability: Reliability) -> None:
    """As the kernel's OOM killer would: SIGKILL from the host to the container's main process. The
    time until the app answers /readyz again is the app container's start time (recorded)."""
    app = _by_service(own_stack)["app"]
    killed = time.monotonic()
    try:  # not `docker kill`: the engine counts that as a stop asked for, and restarts nothing
        os.kill(app["State"]["Pid"], signal.SIGKILL)
    except PermissionError:
        pytest.skip("killing the container's process from the host needs root (or a rootless engine's user)")

    def ready_again() -> bool:
        state = _by_service(own_stack)["app"]["State"]
        if state["StartedAt"] == app["State"]["StartedAt"]:
            return False
        return session().get(f"{own_stack.url('app')}/readyz", timeout=2).status_code == 200

    wait_for("the app restarted by the engine and ready", ready_again, timeout=RESTART_TIMEOUT, interval=0.2)
    ready = time.monotonic() - killed
    wait_for("the restarted app healthy again", lambda: _by_service(own_stack)["app"]["State"]["Health"]["Status"]
             == "healthy", timeout=RESTART_TIMEOUT, interval=1)
    reliability.record("app container SIGKILLed, restarted by the engine", own_stack.mode, ready,
                       ready_after_s=round(ready, 1))


def test_down_leaves_only_the_named_volumes_and_clean_removes_them(own_stack: Provider) -> None:
    project = _project(own_stack)
    containers = _containers(own_stack)
    networks = {name for c in containers for name in c["NetworkSettings"]["Networks"]}
    volumes = {m["Name"] for c in containers for m in c["Mounts"] if m["Type"] == "volume"}
    named = {v for v in volumes if v.startswith(f"{project}_")}
    assert named, "no named volume mounted: nothing to check"

    done = own_stack.sandbox("down", UP_TIMEOUT, "--mode", "compose")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _containers(own_stack) == []
    assert not set(_docker("network", "ls", "--format", "{{.Name}}").split()) & networks
    left = set(_docker("volume", "ls", "--quiet").split()) & volumes
    assert left == named  # every anonymous volume gone, every named one kept

    done = own_stack.sandbox("down", UP_TIMEOUT, "--mode", "compose", "--volumes")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not set(_docker("volume", "ls", "--quiet").split()) & volumes
