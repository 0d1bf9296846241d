"""The app's log lines shaped as Filebeat and ``logstash/pipeline/app-logs.conf`` deliver them to
Elasticsearch: a mirror of that pipeline, for the native sandbox, which has neither program.

It mirrors, in the pipeline's order:

* Filebeat's ``ndjson`` parser (filebeat/filebeat.yml: ``target: ""``, ``add_error_key: true``,
  ``expand_keys: false``): a JSON object becomes the event's fields; any other line keeps its text
  in ``message`` with ``error: {type: json, message}``; Filebeat adds ``log.file.path``,
  ``log.offset`` and its shipping fields, and ``@timestamp`` is the time the line was read;
* ``unparsable_line``: a line Filebeat could not decode (``[error][type] == "json"`` and no
  ``timestamp``) gets its ``error`` renamed ``log_parse_error`` and the tag ``unparsable_line``;
* ``record_time``: ``@timestamp`` from ``timestamp`` (ISO-8601; Logstash keeps milliseconds), or the
  tag ``_dateparsefailure``;
* ``private_client``: a ``request.ip`` in one of the private, loopback or link-local networks gets
  the tag ``private_ip``;
* ``shipping_noise``: Filebeat's and Logstash's bookkeeping fields removed;
* the output's daily index ``app-logs-%{+yyyy.MM.dd}``: the day of ``@timestamp`` in UTC.

It does not mirror the ``geoip`` lookup of public addresses (``client_geo``: GeoLite2 is Logstash's,
not here), so such a document simply has no ``geoip`` fields; the app's own addresses in the sandbox
are loopback, which the pipeline does not look up either. ``tests/e2e/test_log_shaping.py`` checks
every constant below against the pipeline file, so a change there that this mirror does not follow
fails a test.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime
from typing import Any

# The ids of the pipeline's filters, in its order: the steps this module mirrors (client_geo: skipped).
FILTER_IDS = ("unparsable_line", "record_time", "private_client", "client_geo", "shipping_noise")
# filter { if [request][ip] { cidr { network => [...] add_tag => ["private_ip"] } } }
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                    "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10")
PRIVATE_TAG = "private_ip"
# filter { date { match => ["timestamp", "ISO8601"] target => "@timestamp" tag_on_failure => [...] } }
DATE_MATCH = ("timestamp", "ISO8601")
DATE_TARGET = "@timestamp"
DATE_FAILURE_TAG = "_dateparsefailure"
# filter { if [error][type] == "json" and ![timestamp] { mutate { rename => ... add_tag => [...] } } }
UNPARSABLE_CONDITION = '[error][type] == "json" and ![timestamp]'
UNPARSABLE_RENAME = {"[error]": "[log_parse_error]"}
UNPARSABLE_TAG = "unparsable_line"
# filter { mutate { remove_field => [...] } }
NOISE_FIELDS = ("agent", "ecs", "input", "host", "@version", "[log][file][device_id]", "[log][file][inode]",
                "[log][file][fingerprint]")
# output { elasticsearch { index => ... action => ... } }
INDEX_PATTERN = "app-logs-%{+yyyy.MM.dd}"
ACTION = "create"

_NETWORKS = tuple(ipaddress.ip_network(network) for network in PRIVATE_NETWORKS)


def _path(reference: str) -> list[str]:
    """Logstash's field reference ``[a][b]`` (or a bare ``a``) as a list of keys."""
    return reference.strip("[]").split("][") if reference.startswith("[") else [reference]


def _remove(event: dict[str, Any], reference: str) -> Any:
    *parents, last = _path(reference)
    node: Any = event
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    return node.pop(last, None) if isinstance(node, dict) else None


def _set(event: dict[str, Any], reference: str, value: Any) -> None:
    *parents, last = _path(reference)
    node = event
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def _tag(event: dict[str, Any], tag: str) -> None:
    tags = event.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def logstash_time(moment: datetime) -> str:
    """How Logstash writes ``@timestamp``: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _parse_iso8601(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)  # Logstash assumes UTC


def is_private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # cidr cannot match what is not an address
    return any(ip in network for network in _NETWORKS)


def as_shipped(line: str, path: str, offset: int, read_at: datetime) -> dict[str, Any]:
    """What Filebeat sends to Logstash for one line of the app's log file (plus Logstash's @version)."""
    try:
        decoded = json.loads(line)
    except ValueError as error:
        decoded, problem = None, str(error)
    else:
        problem = "" if isinstance(decoded, dict) else "not a JSON object"
    event: dict[str, Any] = dict(decoded) if isinstance(decoded, dict) else {"message": line}
    if problem:
        event["error"] = {"type": "json", "message": f"Error decoding JSON: {problem}"}
    event["@timestamp"] = logstash_time(read_at)
    event["@version"] = "1"
    event["log"] = {"file": {"path": path, "device_id": "0", "inode": "0", "fingerprint": "0" * 64},
                    "offset": offset}
    event["agent"] = {"type": "filebeat"}
    event["ecs"] = {"version": "8.0.0"}
    event["input"] = {"type": "filestream"}
    event["host"] = {"name": "filebeat"}
    return event


def shape(line: str, path: str, offset: int, read_at: datetime) -> dict[str, Any]:
    """The document the pipeline writes for one line of the app's log file."""
    event = as_shipped(line, path, offset, read_at)
    if (event.get("error") or {}).get("type") == "json" and "timestamp" not in event:
        for source, target in UNPARSABLE_RENAME.items():
            _set(event, target, _remove(event, source))
        _tag(event, UNPARSABLE_TAG)
    if "timestamp" in event:
        parsed = _parse_iso8601(event[DATE_MATCH[0]])
        if parsed is None:
            _tag(event, DATE_FAILURE_TAG)
        else:
            event[DATE_TARGET] = logstash_time(parsed)
    address = (event.get("request") or {}).get("ip") if isinstance(event.get("request"), dict) else None
    if address and is_private(str(address)):
        _tag(event, PRIVATE_TAG)
    for reference in NOISE_FIELDS:
        _remove(event, reference)
    return event


def index_name(document: dict[str, Any]) -> str:
    """``app-logs-%{+yyyy.MM.dd}`` of the document's ``@timestamp`` (UTC)."""
    moment = datetime.fromisoformat(document["@timestamp"].replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime("app-logs-%Y.%m.%d")
