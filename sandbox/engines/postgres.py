"""A PostgreSQL cluster from the local server binaries (Debian's ``postgresql`` package), driven
with pg_ctl: the sandbox's database, and the integration tests' local provider.

The cluster lives in one directory (``home``: data dir, Unix socket, by default the log), listens
on 127.0.0.1 only, and has one (super)user ``app`` with a password (scram over TCP) and a database
``app``. PostgreSQL refuses to run as root, so as root every tool runs as the ``postgres`` system
user through ``runuser``; that user must own ``home`` and be able to reach it.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sandbox.common import LOOPBACK, MissingToolError, tail, wait_ready

USER = "app"
DATABASE = "app"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
_TOOLS = ("initdb", "pg_ctl", "postgres")
# Rewritten at every start, so a changed port in .env applies without a new cluster.
_SETTINGS_FILE = "sandbox-settings.conf"


class PasswordMismatchError(RuntimeError):
    """The server runs but refuses the password: the cluster was created with another one."""


def find_bindir(major: str | None = None) -> Path:
    """The directory with initdb, pg_ctl and postgres.

    ``major`` given and installed (Debian layout): that version. Otherwise pg_ctl on PATH, else
    the newest Debian install. Raises MissingToolError when there is none.
    """
    candidates = [DEBIAN_ROOT / major / "bin"] if major else []
    if on_path := shutil.which("pg_ctl"):
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(DEBIAN_ROOT.glob("*/bin"), key=major_version, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in _TOOLS):
            return bindir
    raise MissingToolError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; install the package `postgresql`"
    )


def major_version(bindir: Path) -> int:
    """The major version of a Debian bindir (``/usr/lib/postgresql/15/bin`` -> 15), else 0."""
    name = bindir.parent.name
    return int(name) if name.isdigit() else 0


def system_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: ``postgres`` when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise MissingToolError("running as root, and `runuser` is missing to start PostgreSQL as postgres")
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise MissingToolError("running as root, and there is no `postgres` user to run it as") from None


def can_reach(owner: pwd.struct_passwd | None, directory: Path) -> bool:
    """Whether ``owner`` may enter ``directory`` (search permission on it and on every parent)."""
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


def make_home(home: Path, owner: pwd.struct_passwd | None) -> Path:
    """Create the cluster's directory, private to the user that runs PostgreSQL."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _give(home, owner)
    return home


def dsn(password: str, port: int, host: str = LOOPBACK, scheme: str = "postgresql+psycopg") -> str:
    """URL of the ``app`` database; the default scheme is SQLAlchemy's, ``postgresql`` is libpq's."""
    return f"{scheme}://{USER}:{quote(password, safe='')}@{host}:{port}/{DATABASE}"


def probe(host: str, port: int, password: str, dbname: str = DATABASE) -> Callable[[], None]:
    """A readiness probe: connect as ``app`` and run ``select 1``; raises while that fails."""
    conninfo = make_conninfo(host=host, port=port, user=USER, password=password, dbname=dbname, connect_timeout=2)

    def run() -> None:
        try:
            conn = psycopg.connect(conninfo)
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):  # no SQLSTATE on connection errors
                raise PasswordMismatchError(f"PostgreSQL on port {port} refuses the password of `{USER}`") from exc
            raise
        with conn:
            conn.execute("select 1")

    return run


def _give(path: Path, owner: pwd.struct_passwd | None) -> None:
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


class PostgresCluster:
    """A PostgreSQL cluster in ``home`` (data dir, socket, log unless ``log`` is given)."""

    def __init__(
        self,
        bindir: Path,
        home: Path,
        port: int,
        password: str,
        owner: pwd.struct_passwd | None = None,
        *,
        tuning: Mapping[str, str] | None = None,
        log: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.port = port
        self.dsn = dsn(password, port)
        self.data = home / "data"
        self.log = log or home / "postgres.log"
        self._bindir = bindir
        self._home = home
        self._password = password
        self._owner = owner
        self._tuning = dict(tuning or {})
        self._timeout = timeout
        self._as_owner = ["runuser", "-u", owner.pw_name, "--"] if owner else []

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def create(self) -> None:
        """initdb, start, and create the ``app`` database."""
        self.init()
        self.start()
        self.ensure_database()

    def init(self) -> None:
        """initdb with the ``app`` superuser and its password, scram over TCP."""
        pwfile = self._home / "pwfile"
        self._write_owned(pwfile, self._password + "\n")
        try:
            self._run(
                "initdb",
                f"--pgdata={self.data}",
                f"--username={USER}",
                f"--pwfile={pwfile}",
                # Password auth over TCP; trust on the socket, which lives in the private home dir.
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# listen address, port, socket, tuning: rewritten at every start\n")
            conf.write(f"include = '{_SETTINGS_FILE}'\n")

    def start(self) -> None:
        """Start the server unless it runs, and wait until it answers."""
        if not self.running():
            self._write_settings()
            self._prepare_log()
            self._pg_ctl("start", "--log", str(self.log), "--wait", "--timeout", str(int(self._timeout)))
        # Probe the `postgres` database: `app` does not exist yet during create().
        wait_ready(probe(LOOPBACK, self.port, self._password, "postgres"), "PostgreSQL", self.log_tail,
                   timeout=self._timeout, fatal=(PasswordMismatchError,))

    def ensure_database(self) -> None:
        """Create the ``app`` database unless it is there."""
        conninfo = make_conninfo(host=LOOPBACK, port=self.port, user=USER, password=self._password, dbname="postgres")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            if conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop (``fast``: disconnect clients, then a clean shutdown); nothing when stopped."""
        if self.running():
            self._pg_ctl("stop", "--mode", mode, "--wait", "--timeout", str(int(self._timeout)))

    def destroy(self) -> None:
        """Stop at once and delete ``home``."""
        try:
            if self.data.is_dir() and self.running():
                self.stop("immediate")  # everything is deleted next: no shutdown checkpoint needed
        finally:
            shutil.rmtree(self._home, ignore_errors=True)

    def running(self) -> bool:
        status = self._command("pg_ctl", "status", "--pgdata", str(self.data))
        return status.returncode == 0  # 3: not running (also after a crash), 4: no data dir

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() and self.running() else None

    def log_tail(self) -> str:
        return tail(self.log)

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": f"'{LOOPBACK}'",
            "port": str(self.port),
            # Our own socket dir: /var/run/postgresql may be missing or used by a system cluster.
            "unix_socket_directories": f"'{self._home}'",
            **self._tuning,
        }
        self._write_owned(self.data / _SETTINGS_FILE, "".join(f"{key} = {value}\n" for key, value in settings.items()))

    def _prepare_log(self) -> None:
        # pg_ctl opens the log as the server's user: a log outside home must be theirs.
        if not self.log.exists():
            self.log.touch(mode=0o600)
            _give(self.log, self._owner)

    def _write_owned(self, path: Path, text: str) -> None:
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)
        _give(path, self._owner)

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "--pgdata", str(self.data), *args)

    def _run(self, tool: str, *args: str) -> None:
        done = self._command(tool, *args)
        if done.returncode != 0:
            raise RuntimeError(
                f"`{shlex.join(done.args)}` failed with exit code {done.returncode}:\n"
                f"{done.stdout}{done.stderr}\n--- server log tail ---\n{self.log_tail()}"
            )

    def _command(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - PostgreSQL's own tools, arguments are ours
            [*self._as_owner, str(self._bindir / tool), *args],
            # As the postgres user, the caller's cwd (e.g. /root) may be unreadable.
            cwd=self._home,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=self._timeout * 3,
            check=False,
            # The postmaster outlives the caller (make up returns): keep it out of our session.
            start_new_session=True,
        )
