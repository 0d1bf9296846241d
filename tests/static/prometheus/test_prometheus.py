"""prometheus/: the configuration is valid for Prometheus 3.16 (promtool from the pinned tools module),
every alert is unit-tested on both sides of its thresholds and of its `for:`, carries what a
notification needs, and the rules only use metrics that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from sandbox.env import load_settings
from sandbox.monitoring import write_prometheus_config
from tests.support.promql_sources import PROMETHEUS_SERIES, service_metric_names
from tests.support.tools import promql_metric_names, tool_path

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS = REPO / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOKS = PROMETHEUS / "runbooks.md"
DASHBOARDS = REPO / "grafana" / "dashboards"
JOBS = {"prometheus", "alertmanager", "jaeger", "node"}
# Jobs left to each mode (scrape_config_files): the services that compose can scale, found by DNS there.
REPLICATED_JOBS = {"app": ("app", 9464), "worker": ("worker", 9465)}
SCRAPE_INTERVAL_SECONDS = 15
# Series Prometheus makes itself: the scrape health and the alerts.

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=yaml.CSafeLoader)


def seconds(duration: str) -> float:
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a Prometheus duration: {duration!r}"
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def duration(value: float) -> str:
    return f"{int(value)}s" if value >= 1 else f"{int(value * 1000)}ms"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool_path("promtool"), *map(str, args)], capture_output=True, text=True, check=False)


def rules(kind: str) -> Iterator[dict[str, Any]]:
    """Every rule of that kind ("alert" or "record") in the rule files."""
    for path in RULE_FILES:
        for group in load(path)["groups"]:
            yield from (rule for rule in group["rules"] if kind in rule)


ALERTS = list(rules("alert"))
ALERT_IDS = [f"{a['alert']}-{a['labels']['severity']}" for a in ALERTS]


def test_the_files_are_there() -> None:
    assert [p.name for p in RULE_FILES] == ["alerts.yml", "recording.yml"]
    assert len(RULE_TESTS) >= 2 and ALERTS


# --- prometheus.yml ----------------------------------------------------------------------------


def test_config_is_valid_with_the_compose_targets(tmp_path: Path) -> None:
    """The tree compose mounts at /etc/prometheus: no warning either (a missing target file is one)."""
    shutil.copy(PROMETHEUS / "prometheus.yml", tmp_path)
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    shutil.copytree(PROMETHEUS / "targets" / "compose", tmp_path / "targets")
    shutil.copytree(PROMETHEUS / "scrape" / "compose", tmp_path / "scrape")
    done = promtool("check", "config", tmp_path / "prometheus.yml")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    # promtool loads scrape/*.yml too: a broken one is refused, naming it.
    broken = tmp_path / "scrape" / "app.yml"
    broken.write_text(broken.read_text().replace("type: A", "type: NOPE"))
    done = promtool("check", "config", tmp_path / "prometheus.yml")
    assert done.returncode != 0 and "scrape/app.yml" in done.stdout + done.stderr, done.stdout + done.stderr


def test_config_is_valid_with_the_native_sandbox_tree(tmp_path: Path) -> None:
    """The tree the native sandbox writes (sandbox/monitoring.py), its scrape/ jobs included."""
    settings = load_settings(environ={"SANDBOX_ENV_FILE": str(tmp_path / "absent.env")})
    config = write_prometheus_config(settings, tmp_path / "prometheus")
    done = promtool("check", "config", config)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output


def test_config_has_every_job_through_a_target_file_of_its_own() -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == JOBS
    for name, job in jobs.items():
        # Relative paths only: Prometheus resolves them against the config file, in either mode.
        assert job["file_sd_configs"] == [{"files": [f"targets/{name}.yml"]}], name
        assert set(job) == {"job_name", "file_sd_configs"}, f"{name}: defaults (interval, /metrics) are meant"
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers == {"file_sd_configs": [{"files": ["targets/alertmanager.yml"]}]}
    compose_targets = {p.stem for p in (PROMETHEUS / "targets" / "compose").glob("*.yml")}
    assert compose_targets == JOBS
    assert config["scrape_config_files"] == ["scrape/*.yml"]


def test_compose_targets_use_the_fixed_service_names_and_ports() -> None:
    expected = {"prometheus": "prometheus:9090", "alertmanager": "alertmanager:9093", "jaeger": "jaeger:8888",
                "node": "node-exporter:9100"}
    for job, target in expected.items():
        assert load(PROMETHEUS / "targets" / "compose" / f"{job}.yml") == [{"targets": [target]}], job


def test_compose_finds_every_replica_of_the_app_and_the_worker_by_dns() -> None:
    """Not a static list: an A query for the service name, which Docker's DNS answers with every
    running container of that service; the metrics port, not the public one."""
    files = sorted((PROMETHEUS / "scrape" / "compose").glob("*.yml"))
    assert [p.stem for p in files] == sorted(REPLICATED_JOBS)
    for path in files:
        (job,) = load(path)["scrape_configs"]
        service, port = REPLICATED_JOBS[path.stem]
        assert job["job_name"] == path.stem
        assert set(job) == {"job_name", "dns_sd_configs"}, f"{path.name}: defaults (interval, /metrics) are meant"
        (dns,) = job["dns_sd_configs"]
        assert dns["names"] == [service] and dns["type"] == "A" and dns["port"] == port, dns
        # New replicas are scraped, and removed ones dropped, within a few scrape intervals.
        assert seconds(dns["refresh_interval"]) <= 2 * SCRAPE_INTERVAL_SECONDS, dns


# --- rules ---------------------------------------------------------------------------------------


def test_rule_files_pass_promtool_with_every_lint() -> None:
    done = promtool("check", "rules", "--lint=all", "--lint-fatal", *RULE_FILES)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_rule_unit_tests_pass(test_file: Path) -> None:
    done = promtool("test", "rules", test_file)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_tests_load_the_real_rule_files() -> None:
    loaded = {(path.parent / f).resolve() for path in RULE_TESTS for f in load(path)["rule_files"]}
    assert loaded == {p.resolve() for p in RULE_FILES}


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """Per alert and severity: a case where it fires, and one where it stays quiet (below a threshold
    or the traffic guard, before `for:` has passed, or while only its twin fires)."""
    cases: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"fires": 0, "quiet": 0})
    for path in RULE_TESTS:
        for group in load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                severities = {a["exp_labels"].get("severity") for a in case.get("exp_alerts") or []}
                for severity in ("critical", "warning"):
                    cases[case["alertname"], severity]["fires" if severity in severities else "quiet"] += 1
    for alert in ALERTS:
        counts = cases[alert["alert"], alert["labels"]["severity"]]
        assert counts["fires"] and counts["quiet"], f"{alert['alert']} ({alert['labels']['severity']}): {counts}"


def test_every_recording_rule_has_a_value_check() -> None:
    checked = " ".join(case["expr"] for path in RULE_TESTS for group in load(path)["tests"]
                       for case in group.get("promql_expr_test", []))
    for rule in rules("record"):
        assert re.search(rf"\b{re.escape(rule['record'])}\b", checked), f"no promql_expr_test for {rule['record']}"


def _mutants() -> Iterator[tuple[str, int, str, str]]:
    """(what, alert index, field, new value): each threshold x2 and x0.4, each `for:` x2 and x0.5.
    Every fire and quiet case sits within those factors of its threshold, so each mutant must fail."""
    for index, alert in enumerate(ALERTS):
        name = f"{alert['alert']} ({alert['labels']['severity']})"
        for match in re.finditer(r"(?<![=!<>])[<>]=?\s*(\d+(?:\.\d+)?)", alert["expr"]):
            for factor in (2, 0.4):
                value = float(match.group(1)) * factor
                expr = alert["expr"][: match.start(1)] + f"{value:g}" + alert["expr"][match.end(1) :]
                yield f"{name}: {match.group(0)} x{factor}", index, "expr", expr
        for factor in (2, 0.5):
            yield f"{name}: for {alert['for']} x{factor}", index, "for", duration(seconds(alert["for"]) * factor)


def test_rule_tests_fail_when_a_threshold_or_for_moves(tmp_path: Path) -> None:
    """The unit tests pin every threshold, traffic guard and `for:` from both sides. One promtool run
    for all mutants: each gets its own alerts file and copies of the test files that load it."""
    tests_by_alert: dict[str, set[Path]] = defaultdict(set)
    for path in RULE_TESTS:
        for group in load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                tests_by_alert[case["alertname"]].add(path)
    mutants = list(_mutants())
    assert len(mutants) >= 30
    suites: dict[str, str] = {}  # test file written -> the mutant it tests
    for number, (what, index, field, value) in enumerate(mutants):
        doc = load(PROMETHEUS / "rules" / "alerts.yml")
        positions = [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]
        positions[index][field] = value
        root = tmp_path / f"mutant{number}"
        root.mkdir()
        (root / "alerts.yml").write_text(yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False))
        for test_file in tests_by_alert[ALERTS[index]["alert"]]:
            test = load(test_file)
            test["rule_files"] = [str(root / "alerts.yml")]
            (root / test_file.name).write_text(yaml.dump(test, Dumper=yaml.CSafeDumper, sort_keys=False))
            suites[str(root / test_file.name)] = what
    # promtool runs its files one after another: a share of them per core.
    shares = max(os.cpu_count() or 1, 1)
    runs = [subprocess.Popen([tool_path("promtool"), "test", "rules", f"--junit={tmp_path}/junit{n}.xml",
                              *list(suites)[n::shares]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for n in range(shares)]
    for run in runs:
        run.wait()
    caught = {suites[suite.get("name")] for n in range(shares)
              for suite in ElementTree.parse(tmp_path / f"junit{n}.xml").getroot()
              if int(suite.get("failures")) + int(suite.get("errors"))}
    survivors = [what for what, *_ in mutants if what not in caught]
    assert not survivors, f"no rule test notices these changes: {survivors}"


def test_windows_are_at_least_twice_the_scrape_interval() -> None:
    """Prometheus 3's ranges are left-open: a window of one interval may hold a single sample."""
    for rule in [*rules("alert"), *rules("record")]:
        for window in re.findall(r"\[(\w+)\]", rule["expr"]):
            assert seconds(window) >= 2 * SCRAPE_INTERVAL_SECONDS, f"{rule.get('alert') or rule['record']}: [{window}]"


def test_rules_only_use_metrics_that_exist() -> None:
    """Every selected series is one the service exports (README's table, which the unit tests keep
    in step with the code), a recorded one, or one Prometheus makes."""
    exported = service_metric_names((REPO / "README.md").read_text())
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "db_slow_queries_total"} <= exported
    known = exported | {rule["record"] for rule in rules("record")} | PROMETHEUS_SERIES
    exprs = [rule["expr"] for rule in [*rules("alert"), *rules("record")]]
    for expr, names in promql_metric_names(exprs).items():
        assert names, f"selects no metric: {expr}"
        assert names <= known, f"unknown metric {sorted(names - known)} in: {expr}"


# --- what a notification needs -------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """The anchors a Markdown renderer gives the headings (lower case, punctuation dropped)."""
    headings = re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_has_labels_and_annotations_for_routing_and_people(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning"}
    assert alert["labels"]["alertgroup"] and alert["labels"]["service"]
    annotations = alert["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert "$value" in annotations["description"], "the description must give the measured value"
    anchor = alert["alert"].lower()
    assert annotations["runbook_url"].endswith(f"prometheus/runbooks.md#{anchor}")
    assert anchor in _anchors(RUNBOOKS.read_text()), f"runbooks.md has no section {alert['alert']}"
    uid = re.fullmatch(r"/d/([\w-]+)(\?.*)?", annotations["dashboard_url"])
    assert uid, annotations["dashboard_url"]
    assert (DASHBOARDS / f"{uid.group(1)}.json").is_file(), f"no Grafana dashboard {uid.group(1)}"


def test_twins_share_the_labels_alertmanager_inhibits_by() -> None:
    """A critical alert and its warning twin: same alertgroup and service, different thresholds."""
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alert in ALERTS:
        by_name[alert["alert"]].append(alert)
    twins = by_name["HighErrorRate"]
    assert sorted(a["labels"]["severity"] for a in twins) == ["critical", "warning"]
    assert len({(a["labels"]["alertgroup"], a["labels"]["service"]) for a in twins}) == 1
    assert len({a["expr"] for a in twins}) == 2
