"""redis-server's command lines: the sandbox's Redis persists, the throwaway ones do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.engines import redis_server
from sandbox.env import load_settings


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_throwaway_redis_keeps_nothing(tmp_path: Path) -> None:
    argv = redis_server.argv("redis-server", 6399, tmp_path)
    assert (_option(argv, "--appendonly"), _option(argv, "--save")) == ("no", "")
    assert (_option(argv, "--bind"), _option(argv, "--dir")) == ("127.0.0.1", str(tmp_path))


def test_the_sandbox_redis_appends_to_a_file_in_its_home_synced_every_second(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server, "find_binary", lambda: "redis-server")  # installed or not
    s = load_settings(environ={"SANDBOX_DIR": str(tmp_path / "state"), "SANDBOX_ENV_FILE": str(tmp_path / ".env"),
                               "REDIS_PASSWORD": "secret"})
    argv = redis_server.SANDBOX_RUNNER.argv(s)
    assert argv[1] == str(s.home("redis") / "redis.conf")  # the password stays off the command line
    assert (_option(argv, "--appendonly"), _option(argv, "--appendfsync")) == ("yes", "everysec")
    assert _option(argv, "--save") == ""  # no RDB snapshots besides
    assert _option(argv, "--dir") == str(s.home("redis"))
