"""Small clients of the stack's HTTP APIs for the end-to-end tests: Prometheus, Alertmanager, Jaeger,
Mailpit, the webhook sink, Elasticsearch and the app's JSON log file. Every call has a timeout; none
goes through a proxy (everything is on 127.0.0.1)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

TIMEOUT = 10
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # loopback only: no proxy, no ~/.netrc
    return s


def reader_session() -> requests.Session:
    """`session()` for the stack's own APIs, kept for the whole test session: an idempotent request
    sent on a kept-alive connection that the component has closed meanwhile (it restarted, or its
    idle timeout won the race) is sent again on a new one. Requests to the app under test go through
    `session()`, which never resends: a fault test must see what a client would."""
    s = session()
    resend = Retry(total=2, connect=2, read=2, status=0, other=0, backoff_factor=0.2, raise_on_status=False)
    s.mount("http://", HTTPAdapter(max_retries=resend))
    return s


def seconds(duration: str) -> float:
    """A Prometheus/Alertmanager duration (``1m30s``, ``500ms``) in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = reader_session()

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=TIMEOUT)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus refused {expr!r}: {body}")
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The value of a query that yields at most one series; None when it yields none."""
        result = self.query(expr)
        if len(result) > 1:
            raise AssertionError(f"{expr!r} yields {len(result)} series, one expected")
        return float(result[0]["value"][1]) if result else None

    def by_label(self, expr: str, label: str) -> dict[str, float]:
        return {series["metric"].get(label, ""): float(series["value"][1]) for series in self.query(expr)}

    def alerts(self, name: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/api/v1/alerts", timeout=TIMEOUT)
        return [a for a in response.json()["data"]["alerts"] if a["labels"].get("alertname") == name]

    def alert_rules(self, name: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/api/v1/rules", params={"type": "alert"}, timeout=TIMEOUT)
        return [rule for group in response.json()["data"]["groups"] for rule in group["rules"]
                if rule.get("name") == name]

    def config(self) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/v1/status/config", timeout=TIMEOUT)
        return yaml.safe_load(response.json()["data"]["yaml"])

    def intervals(self) -> tuple[float, float]:
        """(scrape interval, rule evaluation interval) in seconds, as the running Prometheus has them."""
        global_ = self.config().get("global", {})
        return seconds(global_.get("scrape_interval", "1m")), seconds(global_.get("evaluation_interval", "1m"))


class Alertmanager:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = reader_session()

    def route(self) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/v2/status", timeout=TIMEOUT)
        return yaml.safe_load(response.json()["config"]["original"])["route"]

    def group_timing(self) -> tuple[float, float]:
        """(group_wait, group_interval) of the root route, in seconds."""
        route = self.route()
        return seconds(route.get("group_wait", "30s")), seconds(route.get("group_interval", "5m"))


@dataclass(frozen=True)
class Trace:
    spans: list[dict[str, Any]]
    processes: dict[str, dict[str, Any]]

    def named(self, operation: str) -> list[dict[str, Any]]:
        return [span for span in self.spans if span["operationName"] == operation]

    def one(self, operation: str) -> dict[str, Any]:
        found = self.named(operation)
        assert len(found) == 1, f"{len(found)} spans named {operation!r}: {sorted(self.operations())}"
        return found[0]

    def operations(self) -> set[str]:
        return {span["operationName"] for span in self.spans}

    @staticmethod
    def tags(span: dict[str, Any]) -> dict[str, Any]:
        return {tag["key"]: tag["value"] for tag in span.get("tags", [])}

    @staticmethod
    def parent_id(span: dict[str, Any]) -> str | None:
        parents = [r["spanID"] for r in span.get("references", []) if r.get("refType") == "CHILD_OF"]
        return parents[0] if parents else None

    def children(self, parent: dict[str, Any]) -> list[dict[str, Any]]:
        return [span for span in self.spans if self.parent_id(span) == parent["spanID"]]

    def service(self, span: dict[str, Any]) -> str:
        return self.processes[span["processID"]]["serviceName"]

    def process_tags(self, span: dict[str, Any]) -> dict[str, Any]:
        """The span's resource attributes other than service.name (Jaeger's process tags)."""
        return self.tags(self.processes[span["processID"]])


class Jaeger:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = reader_session()

    def trace(self, trace_id: str) -> Trace | None:
        response = self.http.get(f"{self.url}/api/traces/{trace_id}", timeout=TIMEOUT)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json().get("data") or []
        if not data:
            return None
        (found,) = data
        return Trace(found["spans"], found["processes"])


    def find(self, service: str, tags: dict[str, str], lookback: str = "1h") -> list[str]:
        """The ids of the traces of ``service`` with a span carrying these tags (Jaeger's search)."""
        response = self.http.get(f"{self.url}/api/traces", timeout=TIMEOUT, params={
            "service": service, "tags": json.dumps(tags), "lookback": lookback, "limit": 20})
        response.raise_for_status()
        return sorted({found["traceID"] for found in response.json().get("data") or []})


class Mailpit:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = reader_session()

    def subjects(self) -> list[str]:
        response = self.http.get(f"{self.url}/api/v1/messages", params={"limit": 500}, timeout=TIMEOUT)
        response.raise_for_status()
        return [message["Subject"] for message in response.json()["messages"]]

    def clear(self) -> None:
        self.http.delete(f"{self.url}/api/v1/messages", timeout=TIMEOUT).raise_for_status()


class WebhookSink:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = reader_session()

    def messages(self) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/messages", timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()["messages"]

    def titles(self) -> list[str]:
        """The attachment titles of every message (Alertmanager's Slack payload and the app's)."""
        return [attachment.get("title", "") for message in self.messages()
                for attachment in ((message.get("body") or {}).get("attachments") or [])]

    def clear(self) -> None:
        """Forgets the messages, the attempt log and any scripted answer."""
        self.http.delete(f"{self.url}/messages", timeout=TIMEOUT).raise_for_status()

    def script(self, answers: list[dict[str, Any]]) -> None:
        """The next answers (``{"status", "retry_after", "match"}``; see sandbox/webhook_sink.py)."""
        self.http.post(f"{self.url}/_script", json=answers, timeout=TIMEOUT).raise_for_status()

    def attempts(self, starts: str = "") -> list[dict[str, Any]]:
        """Every post (time, path, status, text), answered well or not; those whose text starts so."""
        response = self.http.get(f"{self.url}/messages", timeout=TIMEOUT)
        response.raise_for_status()
        return [a for a in response.json().get("attempt_log", []) if a.get("text", "").startswith(starts)]


class Elasticsearch:
    def __init__(self, url: str, auth: tuple[str, str] | None) -> None:
        self.url = url
        self.http = reader_session()
        self.http.auth = auth

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(f"{self.url}{path}", params=params, timeout=TIMEOUT)

    def search(self, index: str, query: dict[str, Any], size: int = 10) -> list[dict[str, Any]]:
        response = self.http.post(f"{self.url}/{index}/_search", json={"query": query, "size": size},
                                  timeout=TIMEOUT)
        if response.status_code == 404:  # no such index yet
            return []
        response.raise_for_status()
        return response.json()["hits"]["hits"]

    def count(self, index: str, query: dict[str, Any]) -> int:
        response = self.http.post(f"{self.url}/{index}/_count", json={"query": query}, timeout=TIMEOUT)
        if response.status_code == 404:
            return 0
        response.raise_for_status()
        return int(response.json()["count"])


class LogFile:
    """The app's and worker's JSON log, read from an offset on (the native sandbox's file;
    ``e2e_stack.ContainerLogFile`` reads the same file inside a compose container)."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset

    @classmethod
    def from_end(cls, path: Path) -> LogFile:
        return cls(path, path.stat().st_size if path.exists() else 0)

    def read_from_offset(self) -> bytes:
        """What the file holds from ``offset`` on (nothing when it does not exist yet)."""
        if not self.path.exists():
            return b""
        with self.path.open("rb") as file:
            file.seek(self.offset)
            return file.read()

    def lines(self) -> list[tuple[int, str]]:
        """(offset, line) of every complete line written since ``offset``."""
        data = self.read_from_offset()
        end = data.rfind(b"\n")
        found, position = [], self.offset
        for raw in data[:end + 1].split(b"\n")[:-1] if end >= 0 else []:
            found.append((position, raw.decode(errors="replace")))
            position += len(raw) + 1
        return found

    def records(self) -> list[dict[str, Any]]:
        """Every record since ``offset``; a line that is not one JSON object fails the test."""
        records = []
        for position, line in self.lines():
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"{self.path} at byte {position}: not JSON: {line[:300]!r}") from None
            records.append(record)
        return records


def scraped_after(prometheus: Prometheus, moment: float, jobs: tuple[str, ...] = ("app",)) -> bool:
    """Whether every target of ``jobs`` has been scraped since ``moment`` (a ``time.time()``): then
    a query sees everything those targets had counted by that moment."""
    selector = "|".join(jobs)
    oldest = prometheus.value(f'min(timestamp(up{{job=~"{selector}"}}))')
    targets = prometheus.value(f'count(up{{job=~"{selector}"}})')
    return oldest is not None and oldest > moment and targets is not None and targets >= len(jobs)


def notification_trail(session_log: LogFile | None, mailpit: Mailpit, sink: WebhookSink) -> str:
    """What the app and the worker logged about notifications, and what the receivers hold: for a
    failure message."""
    attempts = [f"{a['status']} {a['text'][:60]!r}" for a in sink.attempts()]
    lines = [f"webhook sink attempts: {attempts}", f"Mailpit subjects: {mailpit.subjects()}"]
    if session_log is None:
        return "\n".join([*lines, "(compose: `make logs SERVICE=worker` has the worker's side)"])
    records = [in_brief(record) for record in session_log.records()
               if "notif" in json.dumps(record) or "alert" in record.get("logger", "")]
    return "\n".join([*lines, *records[-30:]])


def in_brief(record: dict[str, Any]) -> str:
    """One record in a line short enough that a failure shows the whole trail: when, which process,
    what, and why (a retry's or a failure's reason, the innermost frame of a hung attempt)."""
    why = {key: record[key] for key in ("channel", "reason", "attempt", "limit_s") if key in record}
    stack = [line.strip() for line in (record.get("error") or {}).get("stack_trace", "").splitlines() if line.strip()]
    when, message = record.get("timestamp", "")[11:23], record.get("message", "")[:120]
    return f"{when} pid {record.get('pid')} {message} {why or ''} {' | '.join(stack[-3:])}"
