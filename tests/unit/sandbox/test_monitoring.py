"""The native sandbox's Prometheus and Alertmanager configurations, made from the shared files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox import monitoring
from sandbox.env import ROOT, Settings, load_settings


def _settings(tmp_path: Path, **values: str) -> Settings:
    environ = {"SANDBOX_DIR": str(tmp_path / "state"), "SANDBOX_ENV_FILE": str(tmp_path / ".env"), **values}
    return load_settings(environ=environ)


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200)])
def test_durations(text: str, seconds: float) -> None:
    assert monitoring.duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "s5", "5 s", "5x", "1m 30s"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        monitoring.duration_seconds(text)


def test_only_the_global_intervals_change_and_the_timeout_fits_them() -> None:
    source = (ROOT / "prometheus" / "prometheus.yml").read_text()
    result = monitoring.sandbox_prometheus_yml(source, "5s")
    before, after = yaml.safe_load(source), yaml.safe_load(result)
    assert before["global"]["scrape_interval"] == "15s"  # the shared file keeps its production values
    assert after["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s", "scrape_timeout": "5s"}
    before.pop("global"), after.pop("global")
    assert before == after
    changed = [(a, b) for a, b in zip(source.splitlines(), result.splitlines(), strict=True) if a != b]
    assert len(changed) == 3  # the comments stay too


def test_a_timeout_within_the_interval_is_kept() -> None:
    source = "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n  scrape_timeout: 10s\nrule_files: []\n"
    assert yaml.safe_load(monitoring.sandbox_prometheus_yml(source, "30s"))["global"] == {
        "scrape_interval": "30s", "evaluation_interval": "30s", "scrape_timeout": "10s"}


@pytest.mark.parametrize("source", [
    "scrape_configs: []\n",  # no global block
    "global:\n  scrape_interval: 15s\n",  # no evaluation_interval
    "global: {scrape_interval: 15s, evaluation_interval: 15s}\n",  # flow style
    # A label of that name before the setting: the text edit would hit the label, the check notices.
    "global:\n  external_labels:\n    scrape_interval: x\n  scrape_interval: 15s\n  evaluation_interval: 15s\n",
])
def test_an_unexpected_layout_is_an_error(source: str) -> None:
    with pytest.raises(ValueError, match=r"prometheus\.yml"):
        monitoring.sandbox_prometheus_yml(source, "5s")


def test_a_job_of_its_own_interval_keeps_it() -> None:
    source = ("global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
              "scrape_configs:\n  - job_name: slow\n    scrape_interval: 1m\n")
    result = yaml.safe_load(monitoring.sandbox_prometheus_yml(source, "5s"))
    assert result["scrape_configs"] == [{"job_name": "slow", "scrape_interval": "1m"}]


def test_the_prometheus_tree(tmp_path: Path) -> None:
    s = _settings(tmp_path, APP_METRICS_PORT="19464", WORKER_METRICS_PORT="19465", PROMETHEUS_PORT="19090",
                  ALERTMANAGER_PORT="19093", JAEGER_METRICS_PORT="18888", SANDBOX_SCRAPE_INTERVAL="7s",
                  SANDBOX_ALERT_FOR="HighErrorRate=45s")
    home = tmp_path / "prometheus"
    config = monitoring.write_prometheus_config(s, home)
    assert yaml.safe_load(config.read_text())["global"]["scrape_interval"] == "7s"
    targets = {path.stem: yaml.safe_load(path.read_text()) for path in (home / "targets").glob("*.yml")}
    assert targets == {
        "app": [{"targets": ["127.0.0.1:19464"]}], "worker": [{"targets": ["127.0.0.1:19465"]}],
        "prometheus": [{"targets": ["127.0.0.1:19090"]}], "alertmanager": [{"targets": ["127.0.0.1:19093"]}],
        "jaeger": [{"targets": ["127.0.0.1:18888"]}], "node": [{"targets": []}],
    }
    jobs = {path.stem: yaml.safe_load(path.read_text()) for path in (home / "scrape").glob("*.yml")}
    assert jobs == {job: {"scrape_configs": [{"job_name": job,
                                              "file_sd_configs": [{"files": [f"../targets/{job}.yml"]}]}]}
                    for job in ("app", "worker")}
    rules = {path.name for path in (ROOT / "prometheus" / "rules").glob("*.yml")}
    assert {path.name for path in (home / "rules").glob("*.yml")} == rules
    alerts = yaml.safe_load((home / "rules" / "alerts.yml").read_text())
    durations = {(r["alert"], r["labels"]["severity"]): r.get("for") for g in alerts["groups"] for r in g["rules"]
                 if "alert" in r}
    assert durations[("HighErrorRate", "critical")] == durations[("HighErrorRate", "warning")] == "45s"
    assert durations[("SlowResponse", "warning")] == "10m"


def test_every_scrape_job_has_a_native_target() -> None:
    jobs = monitoring.target_files((ROOT / "prometheus" / "prometheus.yml").read_text())
    assert set(jobs.values()) == {f"targets/{job}.yml" for job in jobs}
    replicated = monitoring.replicated_jobs(ROOT)
    assert sorted(replicated) == ["app", "worker"]
    assert not set(jobs) & set(replicated), "a job both in prometheus.yml and left to the modes"
    assert set(jobs) | set(replicated) == set(monitoring.TARGET_PORTS)


def test_an_unknown_alert_in_sandbox_alert_for_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="NoSuchAlert"):
        monitoring.write_prometheus_config(_settings(tmp_path, SANDBOX_ALERT_FOR="NoSuchAlert=30s"), tmp_path / "p")


def test_alertmanager_is_rendered_for_the_sandbox(tmp_path: Path) -> None:
    s = _settings(tmp_path, SMTP_PORT="11025", WEBHOOK_SINK_PORT="19099", SANDBOX_ALERT_GROUP_WAIT="3s",
                  SANDBOX_ALERT_GROUP_INTERVAL="9s", ALERT_EMAIL_TO="oncall@example.test")
    config = yaml.safe_load(monitoring.render_alertmanager(s, tmp_path / "am").read_text())
    assert config["global"]["smtp_smarthost"] == "127.0.0.1:11025"
    assert config["global"]["smtp_require_tls"] is False
    assert (config["route"]["group_wait"], config["route"]["group_interval"]) == ("3s", "9s")
    assert config["receivers"][0]["slack_configs"][0]["api_url"] == "http://127.0.0.1:19099/hook"
    assert config["receivers"][1]["email_configs"][0]["to"] == "oncall@example.test"
    templates = "".join(path.read_text() for path in (tmp_path / "am" / "templates").glob("*.tmpl"))
    assert monitoring.GRAFANA_PLACEHOLDER in templates
    assert "${" not in templates


def test_a_webhook_url_in_env_wins_over_the_local_sink(tmp_path: Path) -> None:
    s = _settings(tmp_path, ALERT_WEBHOOK_URL="https://hooks.example.test/T/B/x")
    assert monitoring.webhook_url(s) == "https://hooks.example.test/T/B/x"
    assert monitoring.alertmanager_env(s)["ALERT_WEBHOOK_URL"] == "https://hooks.example.test/T/B/x"
