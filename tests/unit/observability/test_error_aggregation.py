"""Fingerprints: stable across volatile parts of a message, and never carrying a secret."""

from __future__ import annotations

from observability.error_aggregation import ErrorReport
from observability.redaction import Redactor


def _report(message: str) -> ErrorReport:
    try:
        raise ValueError(message)
    except ValueError as error:
        return ErrorReport.of(error, Redactor(("password",)))


def test_fingerprint_ignores_volatile_parts_of_the_message() -> None:
    assert _report("order 12 for 0x7f3a user 'bob'").fingerprint == _report("order 99 for 0x1 user 'eve'").fingerprint
    assert _report("order 12").fingerprint != _report("customer 12").fingerprint


def test_report_message_is_scrubbed() -> None:
    assert "hunter2" not in _report("login password=hunter2 failed").message
