"""The native Elasticsearch's pieces without a server: Java, the distribution, the command line."""

from __future__ import annotations

import os
import pwd
import stat
import zipfile
from pathlib import Path

import pytest

from sandbox.common import MissingToolError
from sandbox.engines import elasticsearch as es
from sandbox.env import Settings, load_settings

VERSION = "9.9.9"


def _jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "release").write_text(f'IMPLEMENTOR="test"\nJAVA_VERSION="{version}"\n')
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    return home


@pytest.fixture
def jvms(tmp_path: Path) -> Path:
    root = tmp_path / "jvm"
    versions = {"java-17": "17.0.15", "temurin-25": "25.0.3", "java-21": "21.0.4", "java-8": "1.8.0_2"}
    for name, version in versions.items():
        _jdk(root, name, version)
    (root / "broken").mkdir()  # no release file, no java: ignored
    return root


def test_the_newest_fitting_jdk_is_taken(jvms: Path) -> None:
    assert es.find_java({"PATH": ""}, jvms) == es.Java(jvms / "temurin-25", 25)


def test_java_home_is_taken_when_it_fits_and_passed_over_when_not(jvms: Path) -> None:
    assert es.find_java({"PATH": "", "JAVA_HOME": str(jvms / "java-21")}, jvms).major == 21
    assert es.find_java({"PATH": "", "JAVA_HOME": str(jvms / "java-17")}, jvms).major == 25


def test_es_java_home_must_fit(jvms: Path) -> None:
    assert es.find_java({"PATH": "", "ES_JAVA_HOME": str(jvms / "java-21")}, jvms).major == 21
    with pytest.raises(MissingToolError, match=r"ES_JAVA_HOME=.*java-17 is Java 17: Elasticsearch 9 needs Java 21"):
        es.find_java({"PATH": "", "ES_JAVA_HOME": str(jvms / "java-17")}, jvms)


def test_no_fitting_jdk_says_what_was_found(tmp_path: Path) -> None:
    root = tmp_path / "jvm"
    _jdk(root, "java-17", "17.0.15")
    _jdk(root, "java-8", "1.8.0_2")
    with pytest.raises(MissingToolError, match=r"needs Java 21 or newer \(found: Java 17 \(.*\), Java 8 \(.*\)\)"):
        es.find_java({"PATH": ""}, root)


# --- the distribution ------------------------------------------------------------------------------


def _fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A `mvn` first on PATH; it appends its arguments to calls.log."""
    bindir = tmp_path / "fake-bin"
    bindir.mkdir()
    mvn = bindir / "mvn"
    mvn.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls.log\n{script}\n')
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "calls.log"


def _distribution_zip(path: Path, extra: tuple[str, str] | None = None) -> Path:
    top = f"elasticsearch-{VERSION}"
    with zipfile.ZipFile(path, "w") as archive:
        launcher = zipfile.ZipInfo(f"{top}/bin/elasticsearch")
        launcher.external_attr = (stat.S_IFREG | 0o755) << 16
        archive.writestr(launcher, "#!/bin/sh\n")
        options = zipfile.ZipInfo(f"{top}/config/jvm.options")
        options.external_attr = (stat.S_IFREG | 0o640) << 16
        archive.writestr(options, "-XX:+UseG1GC\n")
        if extra is not None:
            archive.writestr(*extra)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OBS_ELASTICSEARCH_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _copy_script(archive: Path) -> str:
    # dependency:copy's -DoutputDirectory=DIR: the zip lands there.
    return ('for a in "$@"; do case $a in -DoutputDirectory=*) out=${a#-DoutputDirectory=} ;; esac; done\n'
            f'cp {archive} "$out/elasticsearch-{VERSION}.zip"')


def test_the_distribution_is_downloaded_and_unpacked_once(tmp_path: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_mvn(tmp_path, monkeypatch, _copy_script(_distribution_zip(tmp_path / "dist.zip")))
    said: list[str] = []
    home = es.ensure_distribution(VERSION, None, said.append)
    assert home == cache / VERSION / f"elasticsearch-{VERSION}"
    launcher = home / "bin" / "elasticsearch"
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755  # zipfile alone would drop the mode
    assert stat.S_IMODE((home / "config" / "jvm.options").stat().st_mode) == 0o644  # readable by the system user
    assert f"dependency:copy -Dartifact={es.ARTIFACT.format(version=VERSION)}" in calls.read_text()
    assert any("downloading" in line for line in said) and any("unpacked in" in line for line in said)
    assert sorted(p.name for p in (cache / VERSION).iterdir()) == [home.name]  # no zip, no work dir left
    assert es.cached(VERSION)

    assert es.ensure_distribution(VERSION, None, said.append) == home
    assert len(calls.read_text().splitlines()) == 1  # the second time: nothing downloaded


def test_an_unpublished_version_says_so(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mvn(tmp_path, monkeypatch, 'echo "[ERROR] Could not find artifact org.elasticsearch.distribution"; exit 1')
    with pytest.raises(RuntimeError, match=rf"Elasticsearch {VERSION} has no integ-test-zip .* Set ELASTIC_VERSION"):
        es.ensure_distribution(VERSION, None, lambda _line: None)
    assert not es.cached(VERSION)
    assert list((cache / VERSION).iterdir()) == []  # the work directory is gone


def test_without_maven_the_error_names_it(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=r"Maven \(`mvn`\) is needed once"):
        es.ensure_distribution(VERSION, None)


def test_a_path_outside_the_archive_is_refused(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _distribution_zip(tmp_path / "evil.zip", ("../outside", "x"))
    _fake_mvn(tmp_path, monkeypatch, _copy_script(archive))
    with pytest.raises(RuntimeError, match="a path outside the archive"):
        es.ensure_distribution(VERSION, None, lambda _line: None)
    assert not (cache / VERSION / "outside").exists()


# --- the node ---------------------------------------------------------------------------------------


def _settings(tmp_path: Path) -> Settings:
    return load_settings(environ={"SANDBOX_DIR": str(tmp_path / "state"), "SANDBOX_ENV_FILE": str(tmp_path / ".env"),
                                  "ELASTICSEARCH_PORT": "19200", "ELASTICSEARCH_TRANSPORT_PORT": "19300"})


def test_the_command_line(tmp_path: Path) -> None:
    s, home, dist = _settings(tmp_path), tmp_path / "node", tmp_path / "dist"
    argv = es.argv(s, dist, home, None)
    assert argv[0] == str(dist / "bin" / "elasticsearch")
    for setting in ("discovery.type=single-node", "xpack.security.enabled=false", "network.host=127.0.0.1",
                    "http.port=19200", "transport.port=19300", f"path.data={home / 'data'}",
                    f"path.logs={home / 'logs'}"):
        assert f"-E{setting}" in argv
    root = pwd.getpwuid(0)
    assert es.argv(s, dist, home, root)[:4] == ["runuser", "-u", root.pw_name, "--"]
    java = es.Java(Path("/opt/jdk"), 25)
    assert es.env(home, java) == {"ES_JAVA_HOME": "/opt/jdk", "ES_PATH_CONF": str(home / "config"),
                                  "ES_TMPDIR": str(home / "tmp"), "ES_JAVA_OPTS": "-Xms512m -Xmx512m"}


def test_the_node_directory_gets_the_distributions_config_and_keeps_its_keystore(tmp_path: Path) -> None:
    dist, home = tmp_path / "dist", tmp_path / "state" / "elasticsearch"
    (dist / "config").mkdir(parents=True)
    (dist / "config" / "jvm.options").write_text("new\n")
    es.prepare_node(home, dist, None)
    (home / "config" / "elasticsearch.keystore").write_text("kept")
    (dist / "config" / "jvm.options").write_text("newer\n")
    es.prepare_node(home, dist, None)
    assert (home / "config" / "jvm.options").read_text() == "newer\n"
    assert (home / "config" / "elasticsearch.keystore").read_text() == "kept"
    assert all((home / d).is_dir() for d in ("data", "logs", "tmp"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_as_ourselves_the_node_lives_in_the_state_directory(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert es.node_dir(s, None) == (s.home("elasticsearch"), "")
