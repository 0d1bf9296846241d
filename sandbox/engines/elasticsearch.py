"""Elasticsearch for the native sandbox: the ``integ-test-zip`` distribution, run on a local JDK.

The distribution is Elasticsearch's minimal build (the server, x-pack core and security, no ILM, no
ingest plugins; Kibana cannot use it), published as the Maven artifact
``org.elasticsearch.distribution.integ-test-zip:elasticsearch:<ELASTIC_VERSION>:zip``. ``mvn
dependency:copy`` fetches it once; it is unpacked into

    ~/.cache/observability-stack/elasticsearch/<version>/elasticsearch-<version>/   (OBS_ELASTICSEARCH_DIR)

and reused by every sandbox. It has no bundled JDK: Elasticsearch 9 needs Java 21 or newer
(``find_java``: ES_JAVA_HOME, JAVA_HOME, ``java`` on PATH, /usr/lib/jvm), passed as ES_JAVA_HOME.

Elasticsearch refuses to run as root. As root, it runs as the system user ``obs-sandbox`` (created
with ``useradd --system`` when missing) through ``runuser``; that user owns the node's directory
(config, data, logs, tmp), which must be reachable for it like PostgreSQL's (``.sandbox/`` inside a
private home is not: then the node's directory goes under /var/lib/observability-stack/, and the
distribution under /var/cache/observability-stack/, since ~ of root is private).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.common import MissingToolError, log_size, tail
from sandbox.engines.processes import PidFileRunner, Started, can_reach, spawn
from sandbox.env import Settings
from sandbox.net import LOOPBACK

ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
MIN_JAVA = 21
SYSTEM_USER = "obs-sandbox"
HEAP = "512m"
JVM_DIR = Path("/usr/lib/jvm")
# Where root's distribution and node directories go when the system user cannot reach ~ or .sandbox/.
SYSTEM_CACHE = Path("/var/cache/observability-stack/elasticsearch")
SYSTEM_STATE = Path("/var/lib/observability-stack")
_MARKER = ".sandbox-unpacked"  # written last: a distribution directory without it is incomplete
_DOWNLOAD_TIMEOUT = 900.0
_HEARTBEAT = 10.0  # seconds between "still downloading" lines
_SETUP_TIMEOUT = 180.0
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy

Say = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


# --- Java ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Java:
    home: Path
    major: int


def java_major(home: Path) -> int | None:
    """The feature version of the JDK in ``home`` (from its ``release`` file), or None."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', text, re.MULTILINE)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major  # "1.8.0" is Java 8


def find_java(environ: Mapping[str, str] | None = None, jvm_dir: Path = JVM_DIR) -> Java:
    """A JDK of at least ``MIN_JAVA``: ES_JAVA_HOME if set (it must fit), else JAVA_HOME if it fits,
    else the newest on PATH or under /usr/lib/jvm. Raises MissingToolError saying what was found."""
    env = os.environ if environ is None else environ
    if explicit := env.get("ES_JAVA_HOME"):
        major = java_major(Path(explicit))
        if major is None or major < MIN_JAVA or not os.access(Path(explicit) / "bin" / "java", os.X_OK):
            found = "no JDK" if major is None else f"Java {major}"
            raise MissingToolError(f"ES_JAVA_HOME={explicit} is {found}: Elasticsearch 9 needs Java {MIN_JAVA} or "
                                   "newer; point ES_JAVA_HOME at one, or unset it to have one looked for")
        return Java(Path(explicit), major)
    candidates: list[Path] = []
    if env.get("JAVA_HOME"):
        candidates.append(Path(env["JAVA_HOME"]))
    if on_path := shutil.which("java", path=env.get("PATH")):
        candidates.append(Path(on_path).resolve().parent.parent)
    if jvm_dir.is_dir():
        candidates += sorted(jvm_dir.iterdir())
    seen: dict[Path, int] = {}
    for home in candidates:
        real = home.resolve()
        major = java_major(real)
        if real not in seen and major is not None and os.access(real / "bin" / "java", os.X_OK):
            seen[real] = major
    if env.get("JAVA_HOME") and seen.get(Path(env["JAVA_HOME"]).resolve(), 0) >= MIN_JAVA:
        home = Path(env["JAVA_HOME"]).resolve()
        return Java(home, seen[home])
    fitting = sorted(((major, home) for home, major in seen.items() if major >= MIN_JAVA), reverse=True)
    if fitting:
        return Java(fitting[0][1], fitting[0][0])
    found = ", ".join(f"Java {major} ({home})" for home, major in seen.items()) or "none"
    raise MissingToolError(f"Elasticsearch 9 needs Java {MIN_JAVA} or newer (found: {found}): install a JDK "
                           f"{MIN_JAVA}+ (Debian 13: openjdk-21-jre-headless; elsewhere e.g. Temurin) and set "
                           "ES_JAVA_HOME to it if it is not under /usr/lib/jvm")


# --- the user it runs as ---------------------------------------------------------------------------


def server_user(say: Say = _print) -> pwd.struct_passwd | None:
    """None when we are not root (it runs as ourselves); as root the ``obs-sandbox`` system user,
    created first when missing (and said so)."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise MissingToolError("running as root, and `runuser` (util-linux) is missing to start Elasticsearch "
                               f"as {SYSTEM_USER}: Elasticsearch refuses to run as root")
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise MissingToolError(f"running as root, and `useradd` is missing to create the user {SYSTEM_USER} "
                               "that Elasticsearch runs as (it refuses to run as root)")
    shell = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    done = subprocess.run([useradd, "--system", "--no-create-home", "--shell", shell, SYSTEM_USER],  # noqa: S603
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30, check=False)
    if done.returncode != 0 and "already exists" not in done.stderr:  # a concurrent run may have made it
        raise RuntimeError(f"useradd {SYSTEM_USER} failed (exit {done.returncode}): {done.stderr.strip()}")
    say(f"  elasticsearch: created the system user {SYSTEM_USER} (useradd --system --no-create-home): "
        "Elasticsearch refuses to run as root")
    return pwd.getpwnam(SYSTEM_USER)


def reachable(user: pwd.struct_passwd | None, path: Path) -> bool:
    """Whether ``user`` can enter ``path``, or its nearest existing parent (not made yet: it will be)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return can_reach(user, existing)


# --- the distribution ------------------------------------------------------------------------------


def cache_dir() -> Path:
    root = os.environ.get("OBS_ELASTICSEARCH_DIR") or Path.home() / ".cache" / "observability-stack" / "elasticsearch"
    return Path(root)


def distribution_dir(version: str, user: pwd.struct_passwd | None) -> Path:
    """Where the unpacked distribution of ``version`` is (or goes): the cache, unless ``user`` cannot reach it."""
    preferred = cache_dir() / version
    base = preferred if user is None or reachable(user, preferred) else SYSTEM_CACHE / version
    return base / f"elasticsearch-{version}"


def cached(version: str) -> bool:
    """Whether the distribution of ``version`` is unpacked in either place it may be."""
    homes = (base / version / f"elasticsearch-{version}" for base in (cache_dir(), SYSTEM_CACHE))
    return any((home / _MARKER).is_file() for home in homes)


def ensure_distribution(version: str, user: pwd.struct_passwd | None, say: Say = _print) -> Path:
    """The unpacked integ-test-zip of ``version``: downloaded and unpacked on first use, then reused."""
    home = distribution_dir(version, user)
    if (home / _MARKER).is_file():
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(f"Maven (`mvn`) is needed once, to download Elasticsearch {version} (the "
                               f"integ-test-zip) into {home.parent}: install Debian's `maven`")
    _make_public_dirs(home.parent)
    work = Path(tempfile.mkdtemp(prefix=".download-", dir=home.parent))
    try:
        archive = _download(mvn, version, work, say)
        started = time.monotonic()
        say(f"  elasticsearch {version}: unpacking into {home.parent} ...")
        unpacked = _unpack(archive, work / "unpacked")
        (unpacked / _MARKER).write_text(f"{version}\n")
        unpacked.chmod(0o755)
        shutil.rmtree(home, ignore_errors=True)  # an incomplete one from an interrupted run
        try:
            unpacked.rename(home)
        except OSError:
            if not (home / _MARKER).is_file():  # not a concurrent run that finished first
                raise
        say(f"  elasticsearch {version}: unpacked in {time.monotonic() - started:.1f}s ({home})")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the zip stays in Maven's local repository
    return home


def _make_public_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents readable by everyone (the system user reads the distribution)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        path.chmod(0o755)


def _download(mvn: str, version: str, into: Path, say: Say) -> Path:
    artifact = ARTIFACT.format(version=version)
    say(f"  elasticsearch {version}: downloading {artifact} with Maven (about 130 MB, once) ...")
    started = time.monotonic()
    log = into / "mvn.log"
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - mvn with our arguments
            # -U: a version found missing before is asked for again (Maven would remember the miss for a day).
            [mvn, "-B", "-U", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={into}"],
            cwd=into, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,  # cwd: no pom.xml there
        )
        try:
            while True:
                try:
                    process.wait(timeout=_HEARTBEAT)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed > _DOWNLOAD_TIMEOUT:
                        raise RuntimeError(f"downloading Elasticsearch {version} took over "
                                           f"{_DOWNLOAD_TIMEOUT:.0f}s: gave up") from None
                    say(f"  elasticsearch {version}: still downloading ({elapsed:.0f}s)")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    archive = into / f"elasticsearch-{version}.zip"
    output = log.read_text(errors="replace")
    if process.returncode != 0 or not archive.is_file():
        if "Could not find artifact" in output or "Could not resolve" in output:
            raise RuntimeError(
                f"Elasticsearch {version} has no integ-test-zip that Maven can download ({artifact} is not "
                "published): the native sandbox needs a version that is. Set ELASTIC_VERSION to one (see "
                f"`mvn dependency:get -Dartifact={ARTIFACT.format(version='VERSION')}`)."
            )
        errors = [line for line in output.splitlines() if "ERROR" in line][:10]
        raise RuntimeError(f"mvn dependency:copy failed (exit {process.returncode}):\n" + "\n".join(errors))
    size = archive.stat().st_size / 1e6
    say(f"  elasticsearch {version}: downloaded {size:.0f} MB in {time.monotonic() - started:.1f}s")
    return archive


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack with the files' modes (zipfile alone drops them: bin/elasticsearch must stay executable)."""
    into.mkdir()
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            target = into / info.filename
            if not target.resolve().is_relative_to(into.resolve()):
                raise RuntimeError(f"{archive} holds a path outside the archive: {info.filename}")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise RuntimeError(f"{archive} holds a symbolic link, which is not expected: {info.filename}")
            zipped.extract(info, into)
            # Readable by everyone (the system user runs it), writable by nobody but us.
            target.chmod(((stat.S_IMODE(mode) or (0o755 if info.is_dir() else 0o644)) | 0o444) & ~0o022)
    tops = [path for path in into.iterdir() if path.is_dir()]
    if len(tops) != 1:
        raise RuntimeError(f"{archive} does not hold one top directory: {[p.name for p in tops]}")
    for directory in [tops[0], *[p for p in tops[0].rglob("*") if p.is_dir()]]:
        directory.chmod(directory.stat().st_mode | 0o555)  # readable and enterable by the system user
    return tops[0]


# --- the node -------------------------------------------------------------------------------------


def node_dir(s: Settings, user: pwd.struct_passwd | None) -> tuple[Path, str]:
    """The node's directory (config, data, logs, tmp) and a note when it is not under SANDBOX_DIR."""
    wanted = s.home("elasticsearch")
    if user is None or reachable(user, s.state_dir):
        return wanted, ""
    digest = hashlib.sha256(str(s.state_dir).encode()).hexdigest()[:12]
    home = SYSTEM_STATE / f"sandbox-{digest}" / "elasticsearch"
    return home, f"; its data in {home}: {user.pw_name} cannot reach {s.state_dir}"


def prepare_node(home: Path, distribution: Path, user: pwd.struct_passwd | None) -> None:
    """The node's directories, owned by the user it runs as; config/ from the distribution, refreshed
    at every start (the keystore Elasticsearch adds there is kept)."""
    _make_public_dirs(home.parent)
    for directory in (home, home / "config", home / "data", home / "logs", home / "tmp"):
        directory.mkdir(mode=0o700, exist_ok=True)
    shutil.copytree(distribution / "config", home / "config", dirs_exist_ok=True)
    if user is not None:
        for path in [home, *home.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


def argv(s: Settings, distribution: Path, home: Path, user: pwd.struct_passwd | None) -> list[str]:
    as_user = ["runuser", "-u", user.pw_name, "--"] if user is not None else []
    return [
        *as_user, str(distribution / "bin" / "elasticsearch"),
        # One node, no security (the integ-test-zip has no TLS setup, and the sandbox is loopback only).
        "-Ediscovery.type=single-node",
        "-Expack.security.enabled=false",
        f"-Enetwork.host={LOOPBACK}",
        f"-Ehttp.port={s.elasticsearch_port}",
        f"-Etransport.port={s.elasticsearch_transport_port}",
        f"-Epath.data={home / 'data'}",
        f"-Epath.logs={home / 'logs'}",
        "-Enode.name=sandbox",
        "-Ecluster.name=observability-sandbox",
        # A nearly full disk must not turn the sandbox's indices read-only (the flood-stage watermark).
        "-Ecluster.routing.allocation.disk.threshold_enabled=false",
    ]


def env(home: Path, java: Java) -> dict[str, str]:
    return {
        "ES_JAVA_HOME": str(java.home),
        "ES_PATH_CONF": str(home / "config"),
        "ES_TMPDIR": str(home / "tmp"),
        "ES_JAVA_OPTS": f"-Xms{HEAP} -Xmx{HEAP}",
    }


def health(s: Settings, timeout: float = 2.0) -> None:
    """Raises unless the cluster is green or yellow."""
    url = f"http://{LOOPBACK}:{s.elasticsearch_port}/_cluster/health"
    with _HTTP.open(url, timeout=timeout) as response:
        status = json.loads(response.read()).get("status")
    if status not in ("green", "yellow"):
        raise RuntimeError(f"cluster status {status}")


def install(s: Settings, say: Say = _print) -> None:
    """What the first start needs: a JDK, the system user (as root), the distribution."""
    find_java()
    ensure_distribution(s.elastic_version, server_user(say), say)


@dataclass(frozen=True)
class ElasticsearchRunner(PidFileRunner):
    """Elasticsearch as a process group of ours (runuser and the JVMs)."""

    def start(self, name: str, s: Settings) -> Started:
        java = find_java()
        user = server_user()
        version = s.elastic_version
        distribution = ensure_distribution(version, user)
        home, note = node_dir(s, user)
        prepare_node(home, distribution, user)
        process = spawn(argv(s, distribution, home, user), env={**os.environ, **env(home, java)}, cwd=home,
                                  log=s.log(name), pidfile=s.pidfile(name))
        who = f", as {user.pw_name}" if user is not None else ""
        return Started(lambda: process.poll() is not None, f"Elasticsearch {version}, Java {java.major}{who}{note}")


def provision(s: Settings) -> str:
    """setup/provision.py against the running node, as compose's setup service: the index template
    (security, ILM and Kibana are absent here, and skipped). Its output goes to logs/setup.log."""
    log = s.log("setup")
    offset = log_size(log)
    environment = {**os.environ, "ELASTICSEARCH_URL": f"http://{LOOPBACK}:{s.elasticsearch_port}",
                   "KIBANA_URL": "", "ELASTIC_PASSWORD": "", "SETUP_TIMEOUT_SECONDS": "60"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        done = subprocess.run([sys.executable, str(s.root / "setup" / "provision.py")],  # noqa: S603 - our script
                              env=environment, cwd=s.root, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, timeout=_SETUP_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"setup/provision.py failed (exit {done.returncode})\n--- setup log tail ---\n"
                           f"{tail(log, since=offset)}")
    return f"setup/provision.py; its log: {log}"
