"""alertmanager/: render.sh fills in the template (run with `sh`, as the container runs it), the result
is a valid Alertmanager 0.31 configuration (amtool from the pinned tools module), alerts are routed by
severity, resolved alerts are sent too, and a critical alert mutes its warning twin."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import tool_path

REPO = Path(__file__).resolve().parents[3]
ALERTMANAGER = REPO / "alertmanager"
ALERT_RULES = REPO / "prometheus" / "rules" / "alerts.yml"

# What compose sets for the sandbox (the webhook sink and Mailpit without TLS).
SANDBOX_ENV = {
    "ALERT_WEBHOOK_URL": "http://webhook-sink:9099/hook",
    "SMTP_SMARTHOST": "mailpit:1025",
    "SMTP_REQUIRE_TLS": "false",
    "ALERT_EMAIL_FROM": "alertmanager@example.test",
    "ALERT_EMAIL_TO": "ops@example.test, oncall@example.test",
    "GRAFANA_URL": "http://127.0.0.1:3000",
}


def render(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """render.sh under `sh` with exactly `env` (and PATH): nothing leaks in from the test's shell."""
    return subprocess.run(["sh", ALERTMANAGER / "render.sh", ALERTMANAGER, out],
                          env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, check=False)


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool_path("amtool"), *map(str, args)], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("alertmanager")
    done = render(out, SANDBOX_ENV)
    assert done.returncode == 0, done.stderr
    return out / "alertmanager.yml"


@pytest.fixture(scope="module")
def config(rendered: Path) -> dict[str, Any]:
    return yaml.safe_load(rendered.read_text())


# --- render.sh -----------------------------------------------------------------------------------


def test_render_fills_in_every_placeholder(rendered: Path, config: dict[str, Any]) -> None:
    texts = [rendered.read_text(), *(p.read_text() for p in (rendered.parent / "templates").glob("*.tmpl"))]
    assert not [t for t in texts if "${" in t]
    assert config["global"]["smtp_smarthost"] == "mailpit:1025"
    assert config["global"]["smtp_require_tls"] is False
    assert config["receivers"][0]["slack_configs"][0]["api_url"] == "http://webhook-sink:9099/hook"
    assert '{{ define "obs.grafana_url" }}http://127.0.0.1:3000{{ end }}' in texts[1]


def test_render_reports_every_missing_variable_and_writes_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in SANDBOX_ENV.items() if k not in {"ALERT_WEBHOOK_URL", "ALERT_EMAIL_TO"}}
    env["GRAFANA_URL"] = ""  # empty counts as missing
    done = render(tmp_path / "out", env)
    assert done.returncode == 1
    assert re.search(r"not set:.*ALERT_EMAIL_TO.*ALERT_WEBHOOK_URL.*GRAFANA_URL", done.stderr), done.stderr
    assert not (tmp_path / "out").exists()


def test_render_defaults_are_the_production_ones(tmp_path: Path) -> None:
    env = {k: v for k, v in SANDBOX_ENV.items() if k != "SMTP_REQUIRE_TLS"}
    assert render(tmp_path, env).returncode == 0
    config = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    assert config["global"]["smtp_require_tls"] is True
    assert (config["route"]["group_wait"], config["route"]["group_interval"], config["route"]["repeat_interval"]) == (
        "30s", "5m", "4h")
    assert '{{ define "obs.runbook_base_url" }}{{ end }}' in (tmp_path / "templates" / "notifications.tmpl").read_text()


def test_render_keeps_values_verbatim(tmp_path: Path) -> None:
    """sed's special characters in a value (& \\ | /) come out as they went in."""
    url = r"https://hooks.example.test/services/T0/B0/x?a=1&b=2|3\4"
    assert render(tmp_path, {**SANDBOX_ENV, "ALERT_WEBHOOK_URL": url}).returncode == 0
    assert f"api_url: '{url}'" in (tmp_path / "alertmanager.yml").read_text()


@pytest.mark.parametrize("value", ["it's", "two\nlines"])
def test_render_refuses_what_yaml_single_quotes_cannot_hold(tmp_path: Path, value: str) -> None:
    done = render(tmp_path / "out", {**SANDBOX_ENV, "ALERT_EMAIL_FROM": value})
    assert done.returncode == 1 and "ALERT_EMAIL_FROM" in done.stderr
    assert not (tmp_path / "out").exists()


def test_rendered_files_are_private(rendered: Path) -> None:
    """The webhook URL is a secret (Slack's carries its token)."""
    for path in [rendered, *(rendered.parent / "templates").glob("*.tmpl")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_render_runs_the_command_after_it(tmp_path: Path) -> None:
    done = subprocess.run(["sh", ALERTMANAGER / "render.sh", ALERTMANAGER, tmp_path, "sh", "-c",
                           'test -f "$0/alertmanager.yml" && echo started', tmp_path],
                          env={"PATH": os.environ["PATH"], **SANDBOX_ENV}, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout == "started\n", done.stderr


def test_render_runs_under_busybox_alone(tmp_path: Path) -> None:
    """The Alertmanager image has busybox and nothing else: its sh, sed, grep and friends only."""
    busybox = shutil.which("busybox")
    if busybox is None:
        reason = "busybox is not installed (Debian package busybox): the image's shell cannot be tried"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so this may not skip: {reason}", pytrace=False)
        pytest.skip(reason)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in ["sh", "cat", "grep", "sort", "sed", "mkdir", "rm", "mv"]:
        (bin_dir / applet).symlink_to(busybox)
    done = subprocess.run([bin_dir / "sh", ALERTMANAGER / "render.sh", ALERTMANAGER, tmp_path / "out"],
                          env={"PATH": str(bin_dir), **SANDBOX_ENV}, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "alertmanager.yml").read_text() == render_here(tmp_path / "here")


def render_here(out: Path) -> str:
    assert render(out, SANDBOX_ENV).returncode == 0
    return (out / "alertmanager.yml").read_text()


# --- the rendered configuration ------------------------------------------------------------------


def test_amtool_accepts_the_configuration(rendered: Path) -> None:
    done = amtool("check-config", rendered)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 templates" in done.stdout


@pytest.mark.parametrize("template", ["obs.title", "obs.slack.text", "obs.email.text", "obs.email.html"])
def test_templates_execute(rendered: Path, template: str) -> None:
    done = amtool("template", "render", f"--template.glob={rendered.parent}/templates/*.tmpl",
                  f'--template.text={{{{ template "{template}" . }}}}')
    assert done.returncode == 0 and done.stdout.strip(), done.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=HighErrorRate", "severity=critical", "alertgroup=http-errors", "service=episodes-api"],
     "slack-and-email"),
    (["alertname=HighErrorRate", "severity=warning", "alertgroup=http-errors", "service=episodes-api"], "slack"),
    (["alertname=TargetDown", "severity=critical", "job=worker"], "slack-and-email"),
    (["alertname=Watchdog"], "slack"),
    (["alertname=Something", "severity=info"], "slack"),
])
def test_routes_by_severity(rendered: Path, labels: list[str], receiver: str) -> None:
    done = amtool("config", "routes", "test", f"--config.file={rendered}", f"--verify.receivers={receiver}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_receiver_sends_resolved_notifications_with_our_templates(config: dict[str, Any]) -> None:
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {"slack", "slack-and-email"}
    assert "email_configs" not in receivers["slack"]
    for receiver in receivers.values():
        notifiers = [n for key, ns in receiver.items() if key.endswith("_configs") for n in ns]
        assert notifiers and all(n["send_resolved"] is True for n in notifiers), receiver["name"]
    slack, email = receivers["slack-and-email"]["slack_configs"][0], receivers["slack-and-email"]["email_configs"][0]
    assert slack["text"] == '{{ template "obs.slack.text" . }}'
    assert email["to"] == SANDBOX_ENV["ALERT_EMAIL_TO"]
    assert (email["text"], email["html"]) == ('{{ template "obs.email.text" . }}', '{{ template "obs.email.html" . }}')


def test_templates_carry_summary_description_runbook_dashboard_and_links_back() -> None:
    text = (ALERTMANAGER / "templates" / "notifications.tmpl").read_text()
    alert_text = text.split('{{ define "obs.alert.text" -}}', 1)[1].split("{{- end }}\n\n", 1)[0]
    for needle in [".Annotations.summary", ".Annotations.description", ".Annotations.runbook_url",
                   ".Annotations.dashboard_url", ".GeneratorURL"]:
        assert needle in alert_text, needle
    assert "{{ .ExternalURL }}" in text


def test_critical_mutes_the_warning_of_the_same_group(config: dict[str, Any]) -> None:
    (rule,) = config["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"']
    assert rule["target_matchers"] == ['severity="warning"']
    assert rule["equal"] == ["alertgroup", "service"]
    # Prometheus's alerts carry every label the inhibition and the grouping rely on.
    needed = set(rule["equal"]) | set(config["route"]["group_by"]) - {"alertname"}
    for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]:
        for alert in group["rules"]:
            assert needed <= set(alert["labels"]), alert["alert"]
