"""The compose stack for the end-to-end tests: `make up` once per session, then its endpoints.

These tests need a Docker engine with the compose plugin; without one they are skipped with the
reason (CI has no engine: there they are expected to skip). Each test gets URLs and credentials from
`.sandbox/endpoints.json`, not from knowing which container serves what.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests

from sandbox.__main__ import docker_reachable
from sandbox.compose import MIN_COMPOSE_VERSION, compose_command, compose_version
from sandbox.env import Settings, load_settings
from sandbox.native import endpoints_file

REPO = Path(__file__).resolve().parents[2]
# A first `make up` builds the app image and pulls every other one.
UP_TIMEOUT_SECONDS = 1800
DEFAULT_TEST_TIMEOUT_SECONDS = 300


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs a Docker engine and runs the whole compose stack")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)
            # pytest-timeout counts fixture setup: whichever test comes first also waits for `make up`.
            own = item.get_closest_marker("timeout")
            budget = own.args[0] if own and own.args else DEFAULT_TEST_TIMEOUT_SECONDS
            item.add_marker(pytest.mark.timeout(budget + UP_TIMEOUT_SECONDS), append=False)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 5.0) -> Any:
    """Call ``probe`` until it returns something truthy; fail with ``what`` and the last result or error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except (requests.RequestException, KeyError, ValueError) as exc:  # not up yet, or not there yet
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s (last: {last!r})", pytrace=False)
        time.sleep(interval)


@dataclass(frozen=True)
class Stack:
    """The running stack: its URLs (credentials taken out into ``auth``) and settings."""

    urls: dict[str, str]
    auth: dict[str, tuple[str, str]]
    settings: Settings

    def url(self, key: str) -> str:
        return self.urls[key]

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(compose_command(self.settings, *args), capture_output=True, text=True,
                              timeout=timeout, check=False)


def _split_credentials(endpoints: dict[str, str]) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    urls, auth = {}, {}
    for key, url in endpoints.items():
        parts = urlsplit(url)
        if parts.scheme.startswith("http") and parts.username:
            auth[key] = (unquote(parts.username), unquote(parts.password or ""))
            urls[key] = parts._replace(netloc=f"{parts.hostname}:{parts.port}").geturl()
        else:
            urls[key] = url
    return urls, auth


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    if not docker_reachable():
        pytest.skip("no Docker engine answers `docker info`: the compose stack cannot run here")
    version = compose_version()
    if version is None or version < MIN_COMPOSE_VERSION:
        pytest.skip(f"docker compose {version or 'is missing'}: {'.'.join(map(str, MIN_COMPOSE_VERSION))}+ needed")
    settings = load_settings()
    was_running = _mode(settings) == "compose"
    done = subprocess.run(["make", "up"], cwd=REPO, capture_output=True, text=True, timeout=UP_TIMEOUT_SECONDS,
                          check=False, env={**os.environ})
    if done.returncode != 0:
        ps = subprocess.run(compose_command(settings, "ps", "--all"), capture_output=True, text=True, check=False)
        pytest.fail(f"make up failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n{ps.stdout}",
                    pytrace=False)
    settings = load_settings()  # make up may just have created .env
    endpoints = json.loads(endpoints_file(settings).read_text())
    assert endpoints.pop("mode") == "compose", "make up chose native mode although an engine answers"
    urls, auth = _split_credentials(endpoints)
    yield Stack(urls, auth, settings)
    if not was_running:
        subprocess.run(["make", "down"], cwd=REPO, capture_output=True, timeout=600, check=False)


def _mode(settings: Settings) -> str | None:
    try:
        return json.loads(endpoints_file(settings).read_text()).get("mode")
    except (OSError, ValueError):
        return None
