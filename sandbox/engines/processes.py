"""Background processes that outlive ``make up``: started in a session of their own, found again
through pid files, stopped as a whole process group; and the runners the native sandbox starts its
components with (``Spawned``, or an engine's own, such as ``PostgresRunner``). Each start returns a
``Started``; ``sandbox.native`` then waits for the component's health check.

A pid file holds the pid and the process's start time (from /proc), so a pid reused by an
unrelated process after a reboot or a crash is not taken for ours. Zombies count as gone: the
processes are re-parented to whatever init the machine has, which may be slow to reap them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sandbox.env import Settings

STOP_TIMEOUT = 20.0  # seconds a process group gets to exit after SIGTERM before SIGKILL
_PROC = Path("/proc")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def spawn(argv: list[str], *, env: Mapping[str, str], cwd: Path, log: Path, pidfile: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(  # noqa: S603 - the command lines of sandbox.components
            argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_pidfile(pidfile, process.pid)
    return process


def loopback_without_proxy(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with the loopback addresses added to NO_PROXY (both spellings, entries kept).

    Every peer of a sandbox process is on loopback, and Python's HTTP clients (requests, urllib)
    send loopback through HTTP_PROXY unless NO_PROXY names it; Go's clients never do. Without this,
    a proxy in the environment received the app's webhook notifications while Alertmanager's reached
    the sink.
    """
    entries = [entry.strip() for key in ("no_proxy", "NO_PROXY") for entry in environ.get(key, "").split(",")]
    merged = ",".join(dict.fromkeys(entry for entry in (*entries, *_LOOPBACK_HOSTS) if entry))
    return {**environ, "no_proxy": merged, "NO_PROXY": merged}


def write_pidfile(pidfile: Path, pid: int) -> None:
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{pid} {_start_time(pid) or ''}\n")


def read_pidfile(pidfile: Path) -> int | None:
    """The pid (= process group) in ``pidfile`` while that group runs; a stale file is removed.

    The group counts as running when its leader does (same start time: not a reused pid), or when
    the leader is gone but members are left (say, workers of a killed master), which need stopping.
    """
    try:
        fields = pidfile.read_text().split()
    except OSError:
        return None
    pid = int(fields[0]) if fields and fields[0].isdigit() else None
    if pid is not None and _ours(pid, fields[1] if len(fields) > 1 else None):
        return pid
    pidfile.unlink(missing_ok=True)
    return None


def _ours(pid: int, recorded_start: str | None) -> bool:
    if alive(pid):
        return recorded_start is None or _start_time(pid) in (None, recorded_start)
    return group_alive(pid)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    if _PROC.is_dir():
        stat = _stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:  # no /proc (not Linux): existence is all we can tell
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Some process of the group ``pgid`` still runs (zombies aside)."""
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """The pids of the running (not zombie) processes of group ``pgid``."""
    if not _PROC.is_dir():  # not Linux: whether the group exists is all we can tell
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[0] not in ("Z", "X") and int(stat[2]) == pgid:
            members.append(int(entry.name))
    return members


def stop_group(pgid: int, timeout: float = STOP_TIMEOUT) -> str:
    """SIGTERM to the group, SIGKILL after ``timeout``; returns the signal that ended it."""
    _signal_group(pgid, signal.SIGTERM)
    _signal_group(pgid, signal.SIGCONT)  # a stopped (SIGSTOP) process acts on SIGTERM only once continued
    if _wait_gone(pgid, timeout):
        return "SIGTERM"
    _signal_group(pgid, signal.SIGKILL)
    _wait_gone(pgid, 5.0)
    return "SIGKILL"


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left to signal: as good as stopped
        os.killpg(pgid, signum)


def _wait_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...], or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[19] if stat is not None else None  # field 22 of stat: start time in clock ticks


def can_reach(owner: pwd.struct_passwd | None, directory: Path) -> bool:
    """Whether ``owner`` (None: ourselves) may enter ``directory`` (search permission on it and on every parent)."""
    if owner is None:
        return os.access(directory, os.X_OK)
    check = subprocess.run(  # noqa: S603 - fixed programs, arguments are ours
        ["runuser", "-u", owner.pw_name, "--", "test", "-x", str(directory)],  # noqa: S607 - system tools
        cwd="/",  # our own cwd may be unreadable for that user
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=10,
        check=False,
    )
    return check.returncode == 0


# --- runners: how a component runs natively ------------------------------------------------------


@dataclass(frozen=True)
class Started:
    exited: Callable[[], bool]  # true once the process is gone: no use waiting for it to answer
    note: str = ""  # printed after "ready in ...s"


class Runner(Protocol):
    def pid(self, name: str, s: Settings) -> int | None: ...
    def start(self, name: str, s: Settings) -> Started: ...
    def stop(self, name: str, s: Settings) -> str: ...
    def log(self, name: str, s: Settings) -> Path: ...


def _no_env(_s: Settings) -> dict[str, str]:
    return {}


def _at_root(s: Settings) -> Path:
    return s.root


def _nothing(_s: Settings) -> None:
    return None


class PidFileRunner:
    """A process group of ours, found through its pid file and stopped by process group."""

    def pid(self, name: str, s: Settings) -> int | None:
        return read_pidfile(s.pidfile(name))

    def stop(self, name: str, s: Settings) -> str:
        pid = self.pid(name, s)
        how = stop_group(pid) if pid is not None else "not running"
        s.pidfile(name).unlink(missing_ok=True)
        return how

    def log(self, name: str, s: Settings) -> Path:
        return s.log(name)


@dataclass(frozen=True)
class Spawned(PidFileRunner):
    """A process started in its own session."""

    argv: Callable[[Settings], list[str]]
    env: Callable[[Settings], dict[str, str]] = _no_env
    cwd: Callable[[Settings], Path] = _at_root
    prepare: Callable[[Settings], None] = _nothing  # what must exist before the process starts

    def start(self, name: str, s: Settings) -> Started:
        self.prepare(s)
        env = {**loopback_without_proxy(os.environ), "PYTHONUNBUFFERED": "1", **self.env(s)}
        process = spawn(self.argv(s), env=env, cwd=self.cwd(s), log=s.log(name), pidfile=s.pidfile(name))
        return Started(lambda: process.poll() is not None)
