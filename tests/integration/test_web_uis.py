"""The web UIs of the cached tool builds: each binary tools/build.sh made is started on a free port and
must serve its UI's page and the script that page loads, not only its API.

A Go build without its UI's assets still answers: Prometheus with a 500 for every page, Mailpit with
its page but a 404 for the script. So each test fetches the page, finds the script in it and fetches
that too. Alertmanager 0.31.1 carries its compiled classic UI in its module; Jaeger has no UI natively.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox.net import LOOPBACK, free_port
from tests.support.tools import tool_path

# The first call may build the binary (minutes cold; `make tools` first keeps that out of the timeout).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

_NO_PROXY = {"http": "", "https": ""}  # loopback: never through a proxy from the environment
_START_TIMEOUT = 30.0


def _get(url: str) -> requests.Response:
    return requests.get(url, timeout=10, proxies=_NO_PROXY)


def _started(argv: list[str], base: str, ready_path: str, log: Path) -> Iterator[str]:
    """Runs argv until the test is done; yields base once base + ready_path answers."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            assert process.poll() is None, f"{argv[0]} exited with {process.returncode}:\n{log.read_text()}"
            try:
                if _get(f"{base}{ready_path}").ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"{argv[0]} not ready in {_START_TIMEOUT:.0f} s:\n{log.read_text()}"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _script_of(page: str, pattern: str) -> str:
    found = re.search(pattern, page)
    assert found is not None, f"no script matching {pattern!r} in the page:\n{page[:2000]}"
    return found[1]


def _assert_script(url: str, at_least: int) -> None:
    response = _get(url)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:200]}"
    assert "javascript" in response.headers.get("Content-Type", ""), response.headers
    assert len(response.content) >= at_least, f"{url}: {len(response.content)} bytes, not an application"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    base = f"http://{LOOPBACK}:{free_port()}"
    argv = [str(tool_path("prometheus")), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={base.removeprefix('http://')}"]
    yield from _started(argv, base, "/-/ready", tmp_path / "prometheus.log")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n")
    base = f"http://{LOOPBACK}:{free_port()}"
    argv = [str(tool_path("alertmanager")), f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address={base.removeprefix('http://')}", "--cluster.listen-address="]
    yield from _started(argv, base, "/-/ready", tmp_path / "alertmanager.log")


@pytest.fixture
def mailpit(tmp_path: Path) -> Iterator[str]:
    base = f"http://{LOOPBACK}:{free_port()}"
    argv = [str(tool_path("mailpit")), "--listen", base.removeprefix("http://"),
            "--smtp", f"{LOOPBACK}:{free_port()}", "--pop3", "", "--database", str(tmp_path / "mailpit.db"),
            "--disable-version-check"]
    yield from _started(argv, base, "/readyz", tmp_path / "mailpit.log")


def test_prometheus_serves_its_mantine_ui(prometheus: str) -> None:
    home = _get(prometheus)
    assert home.url == f"{prometheus}/query", "/ leads to the query page"
    for page in ("/query", "/targets", "/alerts", "/config"):
        response = _get(f"{prometheus}{page}")
        assert response.status_code == 200, f"{page}: {response.status_code} {response.text[:200]}"
        assert '<div id="root">' in response.text, f"{page} is not the UI's page"
    script = _script_of(home.text, r'<script[^>]+src="\./(assets/index-[^"]+\.js)"')
    _assert_script(f"{prometheus}/{script}", 500_000)


def test_alertmanager_serves_its_classic_ui(alertmanager: str) -> None:
    page = _get(f"{alertmanager}/")
    assert page.status_code == 200 and "Elm.Main.init" in page.text, page.text[:500]
    script = _script_of(page.text, r'<script src="([^"]+\.js)"')
    _assert_script(f"{alertmanager}/{script}", 50_000)
    # The stylesheets the application loads are there too.
    code = _get(f"{alertmanager}/{script}").text
    for sheet in sorted(set(re.findall(r"lib/[\w./-]+\.css", code))):
        assert _get(f"{alertmanager}/{sheet}").status_code == 200, sheet


def test_mailpit_serves_its_inbox(mailpit: str) -> None:
    page = _get(f"{mailpit}/")
    assert page.status_code == 200 and 'id="app"' in page.text, page.text[:500]
    script = _script_of(page.text, r'<script src="(/dist/app\.js)[?"]')
    _assert_script(f"{mailpit}{script}", 100_000)
    assert _get(f"{mailpit}/dist/app.css").status_code == 200


def test_promtool_accepts_the_service_discoveries_the_stack_may_use(tmp_path: Path) -> None:
    """Prometheus is built without most service discoveries: file, http and DNS are in."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "scrape_configs:\n"
        "  - job_name: file\n    file_sd_configs: [{files: [targets.yml]}]\n"
        "  - job_name: http\n    http_sd_configs: [{url: 'http://127.0.0.1:1/targets'}]\n"
        "  - job_name: dns\n    dns_sd_configs: [{names: [app], type: A, port: 8000}]\n")
    done = subprocess.run([tool_path("promtool"), "check", "config", "--syntax-only", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
