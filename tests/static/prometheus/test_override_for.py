"""prometheus/override_for.py: the sandbox's shorter `for:` changes `for:` and nothing else, and the
result still loads in Prometheus and fires sooner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.scripts import load_script
from tests.support.tools import tool_path

PROMETHEUS = Path(__file__).resolve().parents[3] / "prometheus"
RULES = PROMETHEUS / "rules"
SCRIPT = PROMETHEUS / "override_for.py"


override_for = load_script(SCRIPT, "override_for")


def _without_for(doc: dict[str, Any]) -> dict[str, Any]:
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    return doc


def test_only_the_named_alerts_for_changes(tmp_path: Path) -> None:
    override_for.write_rules(RULES, tmp_path, {"HighErrorRate": "30s"})
    written = yaml.safe_load((tmp_path / "alerts.yml").read_text())
    original = yaml.safe_load((RULES / "alerts.yml").read_text())
    fors = {(r["alert"], r["labels"]["severity"]): r["for"] for g in written["groups"] for r in g["rules"]}
    assert fors[("HighErrorRate", "critical")] == fors[("HighErrorRate", "warning")] == "30s"
    assert fors[("TargetDown", "critical")] == "2m"
    assert _without_for(written) == _without_for(original)
    # A file without an overridden alert is copied as it is, comments and all.
    assert (tmp_path / "recording.yml").read_bytes() == (RULES / "recording.yml").read_bytes()


def test_written_rules_load_and_fire_sooner(tmp_path: Path) -> None:
    override_for.write_rules(RULES, tmp_path / "rules", {"HighErrorRate": "1m"})
    promtool = tool_path("promtool")
    check = subprocess.run([promtool, "check", "rules", *sorted((tmp_path / "rules").glob("*.yml"))],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # 10 % of the requests fail from the start: pending at 1m, firing at 2m instead of 6m.
    test = {
        "rule_files": [str(tmp_path / "rules" / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'http_requests_total{status="200"}', "values": "0+90x10"},
                {"series": 'http_requests_total{status="500"}', "values": "0+10x10"},
            ],
            "alert_rule_test": [{"eval_time": "2m", "alertname": "HighErrorRate", "exp_alerts": [
                {"exp_labels": labels, "exp_annotations": annotations}
                for labels, annotations in _expected_alerts(tmp_path / "rules" / "alerts.yml", "10%")
            ]}],
        }],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    done = subprocess.run([promtool, "test", "rules", tmp_path / "test.yml"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _expected_alerts(rules_file: Path, value: str) -> list[tuple[dict[str, str], dict[str, str]]]:
    """Labels and annotations (with $value filled in) of both HighErrorRate rules."""
    expected = []
    for group in yaml.safe_load(rules_file.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "HighErrorRate":
                annotations = {k: v.replace("{{ $value | humanizePercentage }}", value)
                               for k, v in rule["annotations"].items()}
                expected.append((rule["labels"], annotations))
    assert len(expected) == 2
    return expected


def test_an_unknown_alert_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no alert named HighErorRate"):
        override_for.write_rules(RULES, tmp_path / "out", {"HighErorRate": "30s"})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("HighErrorRate=30s", {"HighErrorRate": "30s"}),
    (" HighErrorRate=30s, TargetDown=1m30s ", {"HighErrorRate": "30s", "TargetDown": "1m30s"}),
    ("", {}),
])
def test_parse_overrides(text: str, expected: dict[str, str]) -> None:
    assert override_for.parse_overrides(text) == expected


@pytest.mark.parametrize("text", ["HighErrorRate", "HighErrorRate=", "HighErrorRate=30", "=30s", "A=1h30", "A=30s5m"])
def test_parse_overrides_rejects_what_prometheus_would(text: str) -> None:
    with pytest.raises(ValueError, match="not ALERT=DURATION"):
        override_for.parse_overrides(text)


def test_command_line(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, SCRIPT, RULES, tmp_path, "SlowResponse=1m"],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "for: 1m" in (tmp_path / "alerts.yml").read_text()
    bad = subprocess.run([sys.executable, SCRIPT, RULES, tmp_path, "SlowResponse=soon"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "not ALERT=DURATION" in bad.stderr
