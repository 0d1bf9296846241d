"""A PostgreSQL cluster from the local server binaries (Debian's ``postgresql`` package), driven
with pg_ctl: the sandbox's database (``PostgresRunner``), and the throwaway clusters of the
integration tests and the benchmarks (``throwaway_cluster``).

The cluster lives in one directory (``home``: data dir, Unix socket, by default the log), listens
on 127.0.0.1 only, and has one (super)user ``app`` with a password (scram over TCP) and a database
``app``. PostgreSQL refuses to run as root, so as root every tool runs as the ``postgres`` system
user through ``runuser``; that user must own ``home`` and be able to reach it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sandbox.common import MissingToolError, tail, wait_ready
from sandbox.engines.processes import Started, can_reach
from sandbox.env import Settings
from sandbox.net import LOOPBACK, free_port

USER = "app"
DATABASE = "app"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
_TOOLS = ("initdb", "pg_ctl", "postgres")
# Rewritten at every start, so a changed port in .env applies without a new cluster.
_SETTINGS_FILE = "sandbox-settings.conf"
# The sandbox's: durability matters little there; losing the last commits in a host crash is fine, corruption is not.
SANDBOX_TUNING = {"synchronous_commit": "off"}
# Throwaway clusters': durability is worthless for data deleted minutes later, and costs seconds per run.
THROWAWAY_TUNING = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


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


class PostgresRunner:
    """PostgreSQL through pg_ctl (its pid file is the postmaster's own).

    As root the server runs as the ``postgres`` user, which must reach the cluster's directory.
    When it cannot reach ``.sandbox/`` (a private parent directory), the cluster goes to a
    directory of its own under that user's home instead; ``run/postgres.home`` records where.
    """

    def pid(self, name: str, s: Settings) -> int | None:
        cluster = self._existing(s)
        return cluster.pid() if cluster is not None else None

    def start(self, name: str, s: Settings) -> Started:
        owner = system_user()
        home, note = self._choose_home(s, owner)
        cluster = self._cluster(s, home, owner)
        make_home(home, owner)
        if not cluster.initialized():
            cluster.init()
        try:
            cluster.start()
        except PasswordMismatchError as exc:
            raise PasswordMismatchError(
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
        version, wanted = str(major_version(self._bindir(s, home))), s.postgres_version
        if not wanted or wanted == version:
            return f"PostgreSQL {version}"
        if find_bindir(wanted).parent.name == wanted:  # installed, so the cluster is older
            return f"PostgreSQL {version}: the cluster was made with it (POSTGRES_VERSION={wanted})"
        return f"PostgreSQL {version}: POSTGRES_VERSION={wanted} is not installed"

    @staticmethod
    def _pointer(s: Settings) -> Path:
        return s.state_dir / "run" / "postgres.home"

    def _existing(self, s: Settings) -> PostgresCluster | None:
        pointer = self._pointer(s)
        if not pointer.is_file():
            return None
        try:
            return self._cluster(s, Path(pointer.read_text().strip()), system_user())
        except MissingToolError:
            return None

    def _choose_home(self, s: Settings, owner: pwd.struct_passwd | None) -> tuple[Path, str]:
        wanted = s.home("postgres")
        if owner is None or can_reach(owner, s.logs_dir):  # its log goes there too
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
        major = version_file.read_text().strip() if version_file.is_file() else s.postgres_version
        return find_bindir(major or None)

    def _cluster(self, s: Settings, home: Path, owner: pwd.struct_passwd | None) -> PostgresCluster:
        log = s.log("postgres") if home == s.home("postgres") else home / "postgres.log"
        return PostgresCluster(
            self._bindir(s, home), home, s.postgres_port, s.postgres_password, owner,
            tuning=SANDBOX_TUNING, log=log, timeout=s.start_timeout,
        )


def health(s: Settings) -> None:
    """Raises unless the sandbox's PostgreSQL lets ``app`` in and answers a query."""
    probe(LOOPBACK, s.postgres_port, s.postgres_password)()


def throwaway_cluster(workdir: Path, timeout: float = 30.0) -> PostgresCluster:
    """A new cluster with a random password on a free port, durability off, created and running; its
    ``destroy()`` deletes it.

    Its home is a new directory under ``workdir``, except as root: then PostgreSQL runs as
    ``postgres``, which cannot enter a private ``workdir`` (pytest's are), and the home goes to the
    world-traversable system temp dir instead.
    """
    bindir, owner = find_bindir(), system_user()  # MissingToolError before anything is made
    if owner is None:
        home = Path(tempfile.mkdtemp(prefix="postgres-", dir=workdir))
    else:
        home = make_home(Path(tempfile.mkdtemp(prefix="postgres-")), owner)
    cluster = PostgresCluster(bindir, home, free_port(), secrets.token_hex(16), owner,
                              tuning=THROWAWAY_TUNING, timeout=timeout)
    try:
        cluster.create()
    except BaseException:
        cluster.destroy()
        raise
    return cluster
