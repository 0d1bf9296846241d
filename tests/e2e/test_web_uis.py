"""The stack's web UIs in a real browser (headless chromium, ``tests/support/browser.py``), as a person
meets them, in either provider:

* Prometheus's query page graphs ``http_requests_total`` after traffic to the app: the chart's legend
  names the app's /healthz series, and its canvas has that series' line drawn in the legend's colour;
* Prometheus's targets page shows one pool per scrape job of the stack's Prometheus configuration
  that has targets, each target of the job's target file once, every one UP, none DOWN;
* Alertmanager's alert list shows an alert posted to its API v2, by its alertname, with its
  receiver, labels and annotations;
* Mailpit's inbox lists the e-mail Alertmanager sent for that alert, and opening it shows its
  subject and its HTML body.

Each test first looks at whether its program serves a web UI at all (``web_ui_problem``): a build
without its web assets serves only its API, and then the test skips with that reason instead of
passing. Without a browser every test skips (in CI it fails), naming the package to install.

Each test leaves a full-page screenshot in ``test-artifacts/screenshots/<test>-<provider>.png``,
whatever its outcome (and one of each intermediate step, ``...-<step>.png``).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from sandbox import docker_engine
from sandbox.env import ROOT
from tests.support.browser import Chromium, Tab, chromium_problem, expect, web_ui_problem
from tests.support.e2e_app import hammer
from tests.support.e2e_clients import Alertmanager, Mailpit, Prometheus, scraped_after, session
from tests.support.e2e_stack import Provider, in_ci
from tests.support.visibility import wait_for

PROMETHEUS_WITHOUT_UI = "built without the builtinassets tag and its compiled Mantine UI"
MAILPIT_WITHOUT_UI = "built without its compiled web UI, server/ui/dist"
ALERTMANAGER_WITHOUT_UI = "built without its web UI assets"

HEALTH_PATH = "/healthz"  # counted by http_requests_total; untouched by the chaos knobs
TRAFFIC = 60
METRIC = "http_requests_total"
GRAPH = {"g0.expr": METRIC, "g0.tab": "graph", "g0.show_tree": "0", "g0.range_input": "5m",
         "g0.res_type": "auto", "g0.res_density": "medium", "g0.display_mode": "lines", "g0.show_exemplars": "0"}
# A drawn line of one series: at least this many pixel columns of the canvas carry its colour.
MIN_LINE_COLUMNS = 10
# The canvas's pixels of a series: opaque enough and this close to its colour in each channel.
MIN_ALPHA = 160
COLOUR_TOLERANCE = 24

SERVICE = "episodes-api"
PROBE_MINUTES = 15  # the probe alert's endsAt; it is resolved at the end of the module anyway


@pytest.fixture(scope="session", autouse=True)
def browser_available() -> None:
    """Before any stack is started for these tests: skip them when no browser can run (in CI: fail)."""
    if problem := chromium_problem():
        if in_ci():
            pytest.fail(f"CI=true, so this may not skip: {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def chromium(browser_available: None) -> Iterator[Chromium]:
    browser = Chromium()
    yield browser
    browser.close()


@pytest.fixture
def tab(chromium: Chromium, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A fresh page; its full-page screenshot is taken at the end whatever the test's outcome."""
    opened = chromium.tab(request.node.name)
    try:
        yield opened
    finally:
        try:
            if opened.page.url != "about:blank":
                print(f"screenshot: {opened.screenshot()}")
        finally:
            opened.close()


def require_web_ui(tab: Tab, name: str, base: str, path: str, built_without: str) -> None:
    """Skip, with the reason, when ``name`` serves no web UI at ``path`` (in CI: fail, since every build
    CI makes has its UI); the browser is shown the page all the same, so that the screenshot has what
    a person would have met."""
    if problem := web_ui_problem(name, base, path, built_without):
        tab.page.goto(f"{base}{path}", wait_until="load")
        if in_ci():
            pytest.fail(f"CI=true, so this may not skip: {problem}", pytrace=False)
        pytest.skip(problem)


# --- Prometheus: the query page --------------------------------------------------------------------


def _two_scrapes_after(prometheus: Prometheus, moment: float) -> None:
    """Two scrapes of the app after ``moment``: each series it has then has a drawn segment."""
    scrape, _ = prometheus.intervals()
    for which in ("first", "second"):
        wait_for(f"the {which} scrape of the app after {moment:.1f}", lambda m=moment: scraped_after(prometheus, m),
                 timeout=3 * scrape + 15, interval=0.2)
        moment = time.time()


def _series_label(metric: dict[str, str]) -> str:
    """A series as the query page's legend writes it (formatSeries: the labels in the API's order)."""
    labels = ", ".join(f'{key}="{value}"' for key, value in metric.items() if key != "__name__")
    return f"{metric.get('__name__', '')}{{{labels}}}"


def _rgb(css: str) -> tuple[int, int, int]:
    red, green, blue = (int(float(n)) for n in re.findall(r"[\d.]+", css)[:3])
    return red, green, blue


# In the page: the pixels of the chart's canvas that carry a colour (RGB), and how many columns and
# rows they span. uPlot's canvas is transparent where nothing is drawn; the series are drawn on it first,
# then the axes and the grid, in greys.
_COLOURED_PIXELS = """([rgb, minAlpha, tolerance]) => {
  const canvas = document.querySelector(".uplot canvas");
  const {width, height} = canvas;
  const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const columns = new Set(), rows = new Set();
  let pixels = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] < minAlpha) continue;
    if (Math.abs(data[i] - rgb[0]) > tolerance || Math.abs(data[i + 1] - rgb[1]) > tolerance
        || Math.abs(data[i + 2] - rgb[2]) > tolerance) continue;
    pixels++;
    columns.add((i / 4) % width);
    rows.add(Math.floor(i / 4 / width));
  }
  return {pixels, columns: columns.size, rows: rows.size, width, height};
}"""


def _drawn(tab: Tab, rgb: tuple[int, int, int]) -> dict[str, int]:
    return tab.page.evaluate(_COLOURED_PIXELS, [list(rgb), MIN_ALPHA, COLOUR_TOLERANCE])


def test_prometheus_graphs_http_requests_total(provider: Provider, prometheus: Prometheus, tab: Tab,
                                               no_background_traffic: None) -> None:
    require_web_ui(tab, "Prometheus", prometheus.url, "/query", PROMETHEUS_WITHOUT_UI)
    statuses = hammer(f"{provider.url('app')}{HEALTH_PATH}", TRAFFIC)
    assert statuses == {200: TRAFFIC}, statuses
    _two_scrapes_after(prometheus, time.time())
    health = prometheus.query(f'{METRIC}{{job="app", endpoint="{HEALTH_PATH}"}}')
    assert health, f"Prometheus has no {METRIC} series of the app's {HEALTH_PATH}"
    # The one this traffic counted (status 200), the largest of them
    wanted = _series_label(max(health, key=lambda series: float(series["value"][1]))["metric"])

    tab.goto(f"{prometheus.url}/query?{urlencode(GRAPH)}")
    page = tab.page
    rows = page.locator(".uplot .u-legend tr.u-series")  # one per series (no time row: the legend is not live)
    row = rows.filter(has=page.locator(".u-label", has_text=wanted))
    expect(row).to_have_count(1)  # waits for the chart (a range query, then uPlot)
    labels = [label.strip() for label in rows.locator(".u-label").all_inner_texts()]
    assert wanted in labels, f"no legend entry {wanted!r} among {labels} ({tab.where()})"
    assert all(label.startswith(f"{METRIC}{{") for label in labels), f"not only {METRIC} graphed: {labels}"
    assert all('job="app"' in label for label in labels if HEALTH_PATH in label), labels
    tab.screenshot("all-series")

    # Its legend colour is on the canvas among the others. Then, as a person would, a click on its entry
    # shows that series alone (every other entry off), and its line is there over many columns.
    marker = row.locator(".u-marker")
    colour = _rgb(marker.evaluate("m => getComputedStyle(m).borderColor"))
    everything = _drawn(tab, colour)
    assert everything["pixels"] > 0, f"the canvas has no pixel of {wanted}'s colour {colour}: {everything} " \
                                     f"({tab.where()})"
    row.click()
    others = rows.filter(has_not=page.locator(".u-label", has_text=wanted))
    for n in range(others.count()):
        expect(others.nth(n)).to_have_class(re.compile(r"\bu-off\b"))
    expect(row).not_to_have_class(re.compile(r"\bu-off\b"))
    alone = _drawn(tab, colour)
    hidden = {_rgb(css) for css in others.locator(".u-marker").evaluate_all(
        "markers => markers.map(m => getComputedStyle(m).borderColor)")} - {colour}
    still_drawn = {rgb: pixels for rgb in hidden if (pixels := _drawn(tab, rgb)["pixels"])}
    assert not still_drawn, f"series switched off still on the canvas (colour: pixels): {still_drawn} ({tab.where()})"
    assert alone["columns"] >= MIN_LINE_COLUMNS, (
        f"{wanted} alone: its colour {colour} spans {alone['columns']} columns of the "
        f"{alone['width']}x{alone['height']} canvas, at least {MIN_LINE_COLUMNS} expected ({tab.where()})")
    assert not tab.errors, tab.where()


# --- Prometheus: the targets page ------------------------------------------------------------------


def configured_targets(provider: Provider) -> dict[str, list[str]]:
    """Every scrape job of the stack's Prometheus configuration and the targets its files list: the
    native sandbox's own copy (its target files written with the ports of .env), or the repository's
    file and ``prometheus/targets/compose/`` (mounted as /etc/prometheus/targets) in compose. The jobs
    of ``scrape/`` come along: natively file-based too, in compose found by DNS, one target per
    running container of the service (its address on the project's network)."""
    if provider.mode == "native":
        config_file = provider.state_dir / "prometheus" / "prometheus.yml"
        targets_dir, scrape_dir = config_file.parent / "targets", config_file.parent / "scrape"
    else:
        config_file = ROOT / "prometheus" / "prometheus.yml"
        targets_dir = ROOT / "prometheus" / "targets" / "compose"
        scrape_dir = ROOT / "prometheus" / "scrape" / "compose"
    config = yaml.safe_load(config_file.read_text())
    assert config.get("scrape_config_files") == ["scrape/*.yml"], config_file
    jobs_found = list(config["scrape_configs"])
    for path in sorted(scrape_dir.glob("*.yml")):
        jobs_found += yaml.safe_load(path.read_text())["scrape_configs"]
    jobs: dict[str, list[str]] = {}
    for job in jobs_found:
        found = [target for static in job.get("static_configs", []) for target in static.get("targets", [])]
        for discovery in job.get("file_sd_configs", []):
            for name in discovery["files"]:
                assert Path(name).parent.name == "targets", f"{config_file}: {name} is not under targets/"
                groups = yaml.safe_load((targets_dir / Path(name).name).read_text()) or []
                found += [target for group in groups for target in group.get("targets", [])]
        for discovery in job.get("dns_sd_configs", []):
            found += [f"{address}:{discovery['port']}" for name in discovery["names"]
                      for address in _container_addresses(provider, name)]
        jobs[job["job_name"]] = found
    return jobs


def _container_addresses(provider: Provider, service: str) -> list[str]:
    """The addresses of a compose service's running containers on the project's network."""
    ids = provider.compose("ps", "--quiet", service, timeout=60).stdout.split()
    if not ids:
        return []
    inspected = docker_engine.docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                     *ids)
    assert inspected is not None, f"docker inspect of {service}'s containers failed"
    return inspected.split()


def _all_scraped(prometheus: Prometheus) -> list[dict[str, Any]]:
    """The active targets once each has been scraped at least once (none 'unknown'); [] before."""
    response = prometheus.http.get(f"{prometheus.url}/api/v1/targets", params={"state": "active"}, timeout=10)
    targets = response.json()["data"]["activeTargets"]
    return targets if targets and all(t["health"] != "unknown" for t in targets) else []


# Each target's row: Endpoint, Labels (badges too), Last scrape, State (the health badge).
STATE_BADGES = "tbody tr > td:nth-child(4) .mantine-Badge-root"


@dataclass
class Pool:
    name: str
    summary: str  # "1 / 1 up"
    badges: list[str]  # each target's state, lower case
    endpoints: list[str]


def _pools(tab: Tab) -> dict[str, Pool]:
    pools = {}
    for item in tab.page.locator(".mantine-Accordion-item").all():
        control = item.locator(".mantine-Accordion-control").inner_text()
        name = control.strip().splitlines()[0].strip()
        summary = re.search(r"\d+ / \d+ up", control)
        pools[name] = Pool(
            name, summary[0] if summary else control,
            [badge.strip().lower() for badge in item.locator(STATE_BADGES).all_text_contents()],
            [cell.strip() for cell in item.locator("tbody tr > td:first-child").all_inner_texts()])
    return pools


def test_prometheus_targets_page_shows_every_configured_target_up(provider: Provider, prometheus: Prometheus,
                                                                  tab: Tab) -> None:
    require_web_ui(tab, "Prometheus", prometheus.url, "/targets", PROMETHEUS_WITHOUT_UI)
    configured = configured_targets(provider)
    with_targets = {job: targets for job, targets in configured.items() if targets}
    scrape, _ = prometheus.intervals()
    wait_for("every active target scraped once", lambda: _all_scraped(prometheus), timeout=3 * scrape + 15)

    tab.goto(f"{prometheus.url}/targets")
    page = tab.page
    expect(page.locator(".mantine-Accordion-item")).to_have_count(len(with_targets))
    expect(page.locator(STATE_BADGES)).to_have_count(sum(map(len, with_targets.values())))
    pools = _pools(tab)
    assert sorted(pools) == sorted(with_targets), (
        f"pools shown {sorted(pools)}, scrape jobs with targets in the configuration {sorted(with_targets)} "
        f"({tab.where()})")
    badges = [badge for pool in pools.values() for badge in pool.badges]
    assert "down" not in badges and "unknown" not in badges, {p.name: p.badges for p in pools.values()}
    assert badges.count("up") == sum(map(len, with_targets.values())), {p.name: p.badges for p in pools.values()}
    for job, targets in with_targets.items():
        pool = pools[job]
        assert pool.badges == ["up"] * len(targets), (job, pool)
        assert pool.summary == f"{len(targets)} / {len(targets)} up", (job, pool)
        for target in targets:
            assert sum(f"//{target}/" in endpoint for endpoint in pool.endpoints) == 1, (job, target, pool.endpoints)
    if empty := len(configured) - len(with_targets):
        expect(page.get_by_text(f"Hiding {empty} empty pools")).to_be_visible()
    assert not tab.errors, tab.where()


# --- Alertmanager and Mailpit: one alert ------------------------------------------------------------


@dataclass(frozen=True)
class ProbeAlert:
    name: str
    summary: str
    starts_at: str

    @property
    def subject(self) -> str:
        """The e-mail's subject: alertmanager/templates/notifications.tmpl's obs.title."""
        return f"[FIRING:1] {self.name} (critical) on {SERVICE}"


@pytest.fixture(scope="module")
def alertmanager_url(endpoint: Callable[[str], str]) -> str:
    return endpoint("alertmanager")


def _post_alert(url: str, alert: dict[str, Any]) -> None:
    response = session().post(f"{url}/api/v2/alerts", json=[alert], timeout=10)
    assert response.status_code == 200, f"POST /api/v2/alerts: {response.status_code} {response.text}"


@pytest.fixture(scope="module")
def probe_alert(alertmanager_url: str) -> Iterator[ProbeAlert]:
    """A critical alert of the app's service, posted to Alertmanager's API v2 as Prometheus posts its
    alerts: Alertmanager lists it and routes it to the webhook sink and to Mailpit. Its own alertgroup
    keeps it from inhibiting anything; it is resolved at the end."""
    now = dt.datetime.now(dt.UTC)
    name = f"WebUiProbe{secrets.token_hex(4)}"
    probe = ProbeAlert(name, f"A probe alert of the web UI tests ({name})", now.isoformat(timespec="milliseconds"))
    alert = {"labels": {"alertname": name, "severity": "critical", "service": SERVICE, "alertgroup": "web-ui-probe"},
             "annotations": {"summary": probe.summary, "description": "Posted by tests/e2e/test_web_uis.py."},
             "startsAt": probe.starts_at, "endsAt": (now + dt.timedelta(minutes=PROBE_MINUTES)).isoformat(),
             "generatorURL": "http://127.0.0.1/web-ui-probe"}
    _post_alert(alertmanager_url, alert)
    try:
        yield probe
    finally:
        _post_alert(alertmanager_url, {**alert, "endsAt": dt.datetime.now(dt.UTC).isoformat()})


def test_alertmanager_lists_the_firing_alert(alertmanager_url: str, probe_alert: ProbeAlert, tab: Tab) -> None:
    require_web_ui(tab, "Alertmanager", alertmanager_url, "/", ALERTMANAGER_WITHOUT_UI)
    tab.goto(f"{alertmanager_url}/#/alerts")
    page = tab.page
    header = page.locator("div.mb-3").filter(
        has=page.locator("span.btn", has_text=re.compile(rf'^alertname="{probe_alert.name}"$')))
    expect(header).to_have_count(1)
    group = header.locator("xpath=..")
    if group.locator("ul.list-group").count() == 0:  # a collapsed group: opened as a person would
        header.locator("button").first.click()
    alerts = group.locator("ul.list-group > li")
    expect(alerts).to_have_count(1)
    expect(header).to_contain_text("1 alert")
    expect(header).to_contain_text("slack-and-email")  # the route of severity="critical"
    for label in (f'service="{SERVICE}"', 'alertgroup="web-ui-probe"'):
        expect(header.locator("span.btn", has_text=label)).to_have_count(1)
    alert = alerts.first
    expect(alert.locator("span.btn", has_text='severity="critical"')).to_have_count(1)
    expect(alert).to_contain_text(probe_alert.starts_at.replace("+00:00", "Z"))
    alert.get_by_role("button", name="Info").click()
    annotations = alert.locator("table tr")
    expect(annotations.filter(has_text="summary:").locator("td")).to_have_text(probe_alert.summary)
    assert not tab.errors, tab.where()


def test_mailpit_inbox_lists_the_alert_email_and_opens_it(provider: Provider, alertmanager_url: str, mailpit: Mailpit,
                                                          probe_alert: ProbeAlert, tab: Tab) -> None:
    require_web_ui(tab, "Mailpit", mailpit.url, "/", MAILPIT_WITHOUT_UI)
    group_wait, _ = Alertmanager(alertmanager_url).group_timing()
    subject = probe_alert.subject
    tab.goto(f"{mailpit.url}/")  # the inbox as it is: what the screenshot shows if the mail never comes
    wait_for(f"the e-mail {subject!r} in Mailpit", lambda: subject in mailpit.subjects(), timeout=group_wait + 60)

    page = tab.page
    page.reload(wait_until="load")
    row = page.locator("[data-testid=message-row]").filter(
        has=page.locator("[data-testid=message-subject]", has_text=subject))
    expect(row).to_have_count(1)
    expect(row.locator("[data-testid=message-subject]")).to_have_text(subject)
    tab.screenshot("inbox")

    row.click()
    view = page.locator("#message-view")
    expect(view).to_be_visible()
    expect(view.locator("table.messageHeaders tr").filter(has=page.locator("th", has_text="Subject"))
           .locator("td")).to_have_text(subject)
    expect(view.locator("table.messageHeaders")).to_contain_text(provider.settings.alert_email_to)
    body = page.frame_locator("#preview-html")
    expect(body.locator("h2")).to_have_text(subject)
    expect(body.locator("body")).to_contain_text(probe_alert.summary)
    assert not tab.errors, tab.where()
