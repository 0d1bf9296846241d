"""Reading pip-audit's reports: recorded samples (written for these tests, in pip-audit 2.10's
`-f json` shape) of a clean audit, a vulnerable one, one where no vulnerability service answered,
a partial one, and failed runs."""

from __future__ import annotations

import json

from tests.support.dependency_audit import Verdict, read_report, read_run


def _report(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


FLASK = {"name": "flask", "version": "3.1.3", "vulns": []}
REQUESTS = {"name": "requests", "version": "2.34.2", "vulns": []}
VULNERABLE = {"name": "werkzeug", "version": "3.0.0", "vulns": [
    {"id": "PYSEC-2026-0001", "fix_versions": ["3.0.6", "3.1.0"]},
    {"id": "GHSA-xxxx-yyyy-zzzz", "fix_versions": []},
]}


def _not_found(name: str, version: str) -> dict:
    return {"name": name, "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} ({version})"}


def test_a_clean_audit_passes() -> None:
    outcome = read_report(_report(FLASK, REQUESTS))
    assert outcome.verdict is Verdict.PASSED
    assert outcome.audited == ("flask", "requests")


def test_a_vulnerable_dependency_fails_with_the_list() -> None:
    outcome = read_report(_report(FLASK, VULNERABLE))
    assert outcome.verdict is Verdict.VULNERABLE
    assert "werkzeug 3.0.0: PYSEC-2026-0001 (fixed in 3.0.6, 3.1.0)" in outcome.message
    assert "werkzeug 3.0.0: GHSA-xxxx-yyyy-zzzz (no fix released)" in outcome.message
    assert [v.id for v in outcome.vulnerabilities] == ["PYSEC-2026-0001", "GHSA-xxxx-yyyy-zzzz"]


def test_a_vulnerability_wins_over_skipped_dependencies() -> None:
    assert read_report(_report(VULNERABLE, _not_found("flask", "3.1.3"))).verdict is Verdict.VULNERABLE


def test_nothing_audited_is_not_a_pass() -> None:
    # What this machine gets: pip-audit exits 0 and says "No known vulnerabilities found".
    outcome = read_report(_report(_not_found("flask", "3.1.3"), _not_found("requests", "2.34.2")))
    assert outcome.verdict is Verdict.NOT_AUDITED
    assert outcome.message.startswith("not audited: no vulnerability service reachable")


def test_a_partial_audit_is_not_a_pass() -> None:
    outcome = read_report(_report(FLASK, _not_found("requests", "2.34.2")))
    assert outcome.verdict is Verdict.NOT_AUDITED
    assert "partly audited" in outcome.message and "requests" in outcome.message


def test_an_empty_report_is_a_tool_failure() -> None:
    assert read_report(_report()).verdict is Verdict.TOOL_FAILED


def test_runs_are_read_by_their_report_even_with_exit_status_1() -> None:
    assert read_run(1, _report(VULNERABLE), "").verdict is Verdict.VULNERABLE
    assert read_run(0, _report(FLASK), "").verdict is Verdict.PASSED


def test_a_run_without_a_report_says_why() -> None:
    unreachable = read_run(1, "", "requests.exceptions.ConnectionError: HTTPSConnectionPool: Max retries exceeded")
    assert unreachable.verdict is Verdict.NOT_AUDITED
    broken = read_run(2, "", "ERROR: Hashes are required in --require-hashes mode")
    assert broken.verdict is Verdict.TOOL_FAILED
    assert "Hashes are required" in broken.message
    assert read_run(0, "not json", "").verdict is Verdict.TOOL_FAILED
