"""How a component runs natively: ``Spawned`` (a process of ours, in its own session, with a pid
file) or ``PostgresRunner`` (pg_ctl). Each start returns a ``Started``; ``sandbox.native`` then
waits for the component's health check."""

from __future__ import annotations

import hashlib
import os
import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sandbox import postgres as pg
from sandbox import processes
from sandbox.env import Settings


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
        return processes.read_pidfile(s.pidfile(name))

    def stop(self, name: str, s: Settings) -> str:
        pid = self.pid(name, s)
        how = processes.stop_group(pid) if pid is not None else "not running"
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
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env(s)}
        process = processes.spawn(self.argv(s), env=env, cwd=self.cwd(s), log=s.log(name), pidfile=s.pidfile(name))
        return Started(lambda: process.poll() is not None)


@dataclass(frozen=True)
class PostgresRunner:
    """PostgreSQL through pg_ctl (its pid file is the postmaster's own).

    As root the server runs as the ``postgres`` user, which must reach the cluster's directory.
    When it cannot reach ``.sandbox/`` (a private parent directory), the cluster goes to a
    directory of its own under that user's home instead; ``run/postgres.home`` records where.
    """

    tuning: Mapping[str, str] = field(default_factory=dict)  # postgresql.conf settings

    def pid(self, name: str, s: Settings) -> int | None:
        cluster = self._existing(s)
        return cluster.pid() if cluster is not None else None

    def start(self, name: str, s: Settings) -> Started:
        owner = pg.system_user()
        home, note = self._choose_home(s, owner)
        cluster = self._cluster(s, home, owner)
        pg.make_home(home, owner)
        if not cluster.initialized():
            cluster.init()
        try:
            cluster.start()
        except pg.PasswordMismatchError as exc:
            raise pg.PasswordMismatchError(
                f"{exc}: the cluster in {home} was created with another POSTGRES_PASSWORD than the one in "
                f"{s.env_file}. Put the old one back, or delete {home} (and its data) to have it created again."
            ) from None
        cluster.ensure_database()
        return Started(lambda: not cluster.running(), self._version_note(s, home) + note)

    def stop(self, name: str, s: Settings) -> str:
        cluster = self._existing(s)
        if cluster is None:
            return "not running"
        try:
            cluster.stop("fast")
            return "pg_ctl stop -m fast"
        except RuntimeError:
            cluster.stop("immediate")  # no clean shutdown within the timeout: crash recovery on next start
            return "pg_ctl stop -m immediate"

    def log(self, name: str, s: Settings) -> Path:
        return s.log("postgres")

    def _version_note(self, s: Settings, home: Path) -> str:
        version, wanted = str(pg.major_version(self._bindir(s, home))), s.get("POSTGRES_VERSION")
        if not wanted or wanted == version:
            return f"PostgreSQL {version}"
        if pg.find_bindir(wanted).parent.name == wanted:  # installed, so the cluster is older
            return f"PostgreSQL {version}: the cluster was made with it (POSTGRES_VERSION={wanted})"
        return f"PostgreSQL {version}: POSTGRES_VERSION={wanted} is not installed"

    @staticmethod
    def _pointer(s: Settings) -> Path:
        return s.state_dir / "run" / "postgres.home"

    def _existing(self, s: Settings) -> pg.PostgresCluster | None:
        pointer = self._pointer(s)
        if not pointer.is_file():
            return None
        try:
            return self._cluster(s, Path(pointer.read_text().strip()), pg.system_user())
        except pg.MissingToolError:
            return None

    def _choose_home(self, s: Settings, owner: pwd.struct_passwd | None) -> tuple[Path, str]:
        wanted = s.home("postgres")
        if owner is None or pg.can_reach(owner, s.logs_dir):  # its log goes there too
            home, note = wanted, ""
        else:
            digest = hashlib.sha256(str(s.state_dir).encode()).hexdigest()[:12]
            home = Path(owner.pw_dir) / f"sandbox-{digest}"
            note = f"; cluster in {home}: the postgres user cannot reach {s.state_dir}"
            self._link_log(s, home / "postgres.log")
        self._pointer(s).parent.mkdir(parents=True, exist_ok=True)
        self._pointer(s).write_text(f"{home}\n")
        return home, note

    @staticmethod
    def _link_log(s: Settings, target: Path) -> None:
        link = s.log("postgres")
        if link.is_symlink():
            link.unlink()
        if not link.exists():
            link.symlink_to(target)

    def _bindir(self, s: Settings, home: Path) -> Path:
        # An existing cluster needs the major version that created it; a new one gets POSTGRES_VERSION's.
        version_file = home / "data" / "PG_VERSION"
        major = version_file.read_text().strip() if version_file.is_file() else s.get("POSTGRES_VERSION")
        return pg.find_bindir(major or None)

    def _cluster(self, s: Settings, home: Path, owner: pwd.struct_passwd | None) -> pg.PostgresCluster:
        log = s.log("postgres") if home == s.home("postgres") else home / "postgres.log"
        return pg.PostgresCluster(
            self._bindir(s, home), home, s.port("POSTGRES_PORT"), s["POSTGRES_PASSWORD"], owner,
            tuning=self.tuning, log=log, timeout=float(s.get("SANDBOX_START_TIMEOUT", "60")),
        )
