"""A headless browser for the end-to-end tests of the stack's web UIs (``tests/e2e/test_web_uis.py``).

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or ``E2E_CHROMIUM``) driven by
Playwright for Python: Playwright's own browser builds are never downloaded. ``chromium_problem()``
says why no browser can be started here (None when one can).

``web_ui_problem()`` is what a person meets first when a program was built without its web UI: the
page is not served, or it is served and one of the scripts or stylesheets it names is not.

Every ``Tab`` is a page in a fresh browser context (light colour scheme, no stored state) that notes
what failed to load and what its scripts threw; ``Tab.screenshot(step)`` saves a full-page picture
to ``test-artifacts/screenshots/<test>-<step>.png`` (``<test>.png`` for the final one, which the
tests take whatever the outcome). The folder is gitignored.
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests

from sandbox.env import ROOT
from tests.support.e2e_clients import session

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Playwright

CHROMIUM_PACKAGE = "chromium"  # Debian's package: /usr/bin/chromium
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1440, "height": 900}
ACTION_TIMEOUT_MS = 30_000  # one click, one wait for an element
TIMEOUT = 10  # seconds, for the plain HTTP look at a UI before the browser opens it


def chromium_path() -> Path:
    return Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))


def chromium_problem() -> str | None:
    """Why no headless chromium can be driven here, with what to install; None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: `make venv` installs the dev extra"
    path = chromium_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        return (f"no chromium at {path}: install Debian's package `{CHROMIUM_PACKAGE}` "
                f"(apt-get install -y {CHROMIUM_PACKAGE}), or name another binary in E2E_CHROMIUM")
    return None


class _Assets(HTMLParser):
    """The scripts and stylesheets an HTML page names."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and named.get("src"):
            self.found.append(named["src"] or "")
        elif tag == "link" and "stylesheet" in (named.get("rel") or "").split() and named.get("href"):
            self.found.append(named["href"] or "")


def page_assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.found


def web_ui_problem(name: str, base: str, path: str, built_without: str) -> str | None:
    """Why ``name`` at ``base`` serves no web UI at ``path`` (None when it does): the page must answer
    200 with HTML, and every script and stylesheet it names on the same server must answer 200.
    ``built_without`` says what such a build lacks, for the reason."""
    http = session()
    url = f"{base}{path}"
    try:
        page = http.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return f"{name} at {base} does not answer GET {path}: {exc}"
    lead = f"{name} at {base} serves no web UI ({built_without})"
    if page.status_code != 200 or "html" not in page.headers.get("Content-Type", ""):
        return (f"{lead}: GET {path} answered {page.status_code} {page.headers.get('Content-Type', '')!r}: "
                f"{page.text[:160].strip()!r}")
    own = urlsplit(page.url).netloc
    assets = [urljoin(page.url, asset) for asset in page_assets(page.text)]
    if not assets:
        return f"{lead}: GET {path} is HTML that names no script or stylesheet: {page.text[:160].strip()!r}"
    for asset in assets:
        if urlsplit(asset).netloc != own:
            continue
        try:
            status = http.get(asset, timeout=TIMEOUT).status_code
        except requests.RequestException as exc:
            return f"{lead}: its page names {asset}, which does not answer: {exc}"
        if status != 200:
            return f"{lead}: its page names {urlsplit(asset).path}, which answers {status}"
    return None


def expect(target: Locator | Page, message: str | None = None) -> Any:
    """Playwright's ``expect``: assertions that wait, up to ACTION_TIMEOUT_MS (imported when a test runs)."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=ACTION_TIMEOUT_MS)
    return playwright_expect(target, message)


def slug(test_name: str) -> str:
    """A file name for a test's node name: ``test_x[native]`` -> ``test_x-native``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-")


class Tab:
    """One page in a fresh context. ``failures`` has every response of 400 or more and every request
    that got no answer (``"404 GET /dist/app.js"``); ``errors`` every exception its scripts threw."""

    def __init__(self, browser: Browser, test_name: str) -> None:
        self.context = browser.new_context(viewport=VIEWPORT, color_scheme="light", locale="en-GB",
                                           timezone_id="UTC")
        self.context.set_default_timeout(ACTION_TIMEOUT_MS)
        self.page: Page = self.context.new_page()
        self.name = slug(test_name)
        self.failures: list[str] = []
        self.errors: list[str] = []
        self.page.on("response", self._response)
        self.page.on("requestfailed", lambda request: self.failures.append(
            f"no answer ({request.failure}) {request.method} {request.url}"))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.failures.append(f"{response.status} {response.request.method} {response.url}")

    @property
    def final_screenshot(self) -> Path:
        return SCREENSHOTS / f"{self.name}.png"

    def goto(self, url: str) -> None:
        response = self.page.goto(url, wait_until="load")
        assert response is None or response.ok, f"GET {url}: {response.status if response else '?'} ({self.where()})"

    def screenshot(self, step: str = "") -> Path:
        """A full-page picture of what the page shows now; ``step`` names an intermediate one."""
        path = SCREENSHOTS / f"{self.name}-{step}.png" if step else self.final_screenshot
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.evaluate("window.scrollTo(0, 0)")  # else a fixed header is drawn where the page was scrolled to
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def where(self) -> str:
        """For a failure message: where the final screenshot goes, what failed to load, what was thrown."""
        parts = [f"screenshot: {self.final_screenshot}"]
        if self.failures:
            parts.append(f"failed requests: {self.failures[:10]}")
        if self.errors:
            parts.append(f"script errors: {self.errors[:5]}")
        return "; ".join(parts)

    def close(self) -> None:
        self.context.close()


class Chromium:
    """Debian's chromium, headless, for one test module."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright: Playwright = sync_playwright().start()
        try:
            # --no-sandbox comes with Playwright's default (chromium_sandbox=False): tests run as root.
            self.browser = self._playwright.chromium.launch(executable_path=str(chromium_path()), headless=True,
                                                            args=["--disable-dev-shm-usage"])
        except Exception:
            self._playwright.stop()
            raise

    def tab(self, test_name: str) -> Tab:
        return Tab(self.browser, test_name)

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._playwright.stop()
