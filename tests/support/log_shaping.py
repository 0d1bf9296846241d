"""What every log shipper must make of a line of the app's log file: a table of input line -> expected
document, met by Filebeat + Logstash (logstash/pipeline/app-logs.conf) and by the OpenTelemetry
Collector (extensions/otel-collector/collector.yaml) alike.

The rules, in the pipeline's order:

* a JSON object's fields are the document's, unchanged (nested objects stay objects);
* ``@timestamp`` is the record's own ``timestamp`` (UTC, to the millisecond; ``timestamp`` keeps the
  microseconds); a record whose time cannot be read keeps the time the line was read and the tag
  ``_dateparsefailure``;
* a ``request.ip`` in a private, loopback or link-local network gets the tag ``private_ip``;
* a line that is not a JSON object is kept: its text in ``message``, the tag ``unparsable_line``, the
  shipper's parse error in ``log_parse_error`` (never in ``error``: that is the app's exception), the
  time it was read as ``@timestamp``;
* ``log.file.path`` and ``log.offset`` say where the line was read; no other shipping field is added;
* the document goes to ``app-logs-yyyy.MM.dd``, the UTC day of its ``@timestamp``, created once.

A case's ``expected`` holds the whole document but for what only the shipper knows (``READ_TIME``: the
moment it read the line; ``log``: the file and offset, checked apart; ``log_parse_error.message``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                    "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10")
PRIVATE_TAG = "private_ip"
DATE_FAILURE_TAG = "_dateparsefailure"
UNPARSABLE_TAG = "unparsable_line"
INDEX_PREFIX = "app-logs-"
READ_TIME = "<the time the shipper read the line>"


@dataclass(frozen=True)
class Case:
    name: str
    line: str  # as the app's log file holds it, without the newline
    expected: dict[str, Any]  # the document, `log` left out; READ_TIME where only the shipper knows
    marker: str  # a value of this case alone: how a test finds its document

    @property
    def index(self) -> str:
        """The daily index of the expected document ('' when it is the day the line is read)."""
        stamp = self.expected["@timestamp"]
        return "" if stamp == READ_TIME else INDEX_PREFIX + stamp[:10].replace("-", ".")


def _record(marker: str, **changes: Any) -> dict[str, Any]:
    """An access record as the app writes it (observability/access_log.py), with `changes` applied."""
    record = {"timestamp": "2027-01-01T00:00:00.123456+00:00", "level": "INFO", "logger": "observability.access",
              "message": "GET /api/episodes 200", "event": "api_access", "layer": "access", "request_id": marker,
              "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "status_code": 200,
              "duration_ms": 3.25, "service": {"name": "episodes-api", "node": {"name": "web-1"}},
              "request": {"method": "GET", "path": "/api/episodes", "ip": "127.0.0.1", "user_agent": "t"}}
    record.update(changes)
    return record


def _json_case(name: str, tags: list[str], stamp: str, **changes: Any) -> Case:
    marker = f"shape-{name}-{uuid.uuid4().hex[:12]}"
    record = _record(marker, **changes)
    expected = {**record, "@timestamp": stamp}
    if tags:
        expected["tags"] = tags
    return Case(name, json.dumps(record, separators=(",", ":")), expected, marker)


def _text_case(name: str, text: str) -> Case:
    marker = f"shape-{name}-{uuid.uuid4().hex[:12]}"
    line = text.replace("MARKER", marker)
    expected = {"message": line, "tags": [UNPARSABLE_TAG], "log_parse_error": {"type": "json"},
                "@timestamp": READ_TIME}
    return Case(name, line, expected, marker)


def cases() -> list[Case]:
    """The table, with fresh markers (so that a stack that keeps its index can be tested again)."""
    return [
        _json_case("access-record", [PRIVATE_TAG], "2027-01-01T00:00:00.123Z"),
        _json_case("whole-second", [PRIVATE_TAG], "2026-12-31T23:59:59.000Z",
                   timestamp="2026-12-31T23:59:59+00:00"),  # Python writes no fraction when it is zero
        _json_case("public-client", [], "2027-01-01T00:00:00.123Z",
                   request={"method": "GET", "path": "/", "ip": "8.8.8.8", "user_agent": "t"}),
        _json_case("ipv6-unique-local", [PRIVATE_TAG], "2027-01-01T00:00:00.123Z",
                   request={"method": "GET", "path": "/", "ip": "fd00::1", "user_agent": "t"}),
        _json_case("unreadable-time", [DATE_FAILURE_TAG, PRIVATE_TAG], READ_TIME, timestamp="yesterday"),
        _json_case("app-error", [PRIVATE_TAG], "2027-01-01T00:00:00.123Z", level="ERROR",
                   error={"type": "json", "message": "the app's own exception", "stack_trace": "..."}),
        _text_case("traceback", "Traceback (most recent call last): MARKER"),
        _text_case("json-array", '["MARKER", 1]'),
        _text_case("cut-json", '{"timestamp":"2027-01-01T00:00:00+00:00","message":"MARKER'),
    ]


def matches(case: Case, document: dict[str, Any], read_between: tuple[datetime, datetime]) -> list[str]:
    """How `document` differs from the case's expectation: empty when it meets it."""
    problems = []
    expected, actual = dict(case.expected), dict(document)
    log = actual.pop("log", None)
    if not (isinstance(log, dict) and isinstance(log.get("file"), dict) and log["file"].get("path")
            and isinstance(log.get("offset"), int)):
        problems.append(f"log.file.path and log.offset missing or wrong: {log!r}")
    if expected["@timestamp"] == READ_TIME:
        expected.pop("@timestamp")
        stamp = actual.pop("@timestamp", None)
        if not _within(stamp, read_between):
            problems.append(f"@timestamp {stamp!r} is not the time the line was read {read_between}")
    if UNPARSABLE_TAG in expected.get("tags", []):
        parse_error = actual.get("log_parse_error")
        if isinstance(parse_error, dict) and parse_error.get("message"):
            actual["log_parse_error"] = {k: v for k, v in parse_error.items() if k != "message"}
    keys = sorted(set(actual) | set(expected))
    problems += [f"{key}: expected {expected.get(key)!r}, got {actual.get(key)!r}"
                 for key in keys if _exact(actual.get(key)) != _exact(expected.get(key))]
    return problems


def _exact(value: Any) -> str:
    """The value as JSON: 200 and 200.0 differ (Python's == would call them equal)."""
    return json.dumps(value, sort_keys=True)


def _within(stamp: Any, window: tuple[datetime, datetime]) -> bool:
    if not isinstance(stamp, str):
        return False
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
    start, end = window
    # @timestamp is cut to the millisecond: widen the window by one.
    return start.replace(microsecond=start.microsecond // 1000 * 1000) <= moment <= end


def index_of(document: dict[str, Any]) -> str:
    """``app-logs-yyyy.MM.dd`` of a document's ``@timestamp`` (UTC)."""
    moment = datetime.fromisoformat(document["@timestamp"].replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime(INDEX_PREFIX + "%Y.%m.%d")
