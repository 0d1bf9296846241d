"""What the log pipeline's static tests share: the repository's files, the app's documented and
emitted log fields, and flattening records the way Elasticsearch maps them."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
# The app's log file in the compose stack (docker-compose.yml, x-service-env LOG_FILE).
LOG_FILE = "/var/log/app/app.jsonl"


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((REPO / relative).read_text())


def load_json(relative: str) -> Any:
    return json.loads((REPO / relative).read_text())


def leaf_fields(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every non-null leaf, as Elasticsearch would map it."""
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from leaf_fields(value, path + ".")
        elif value is not None:
            yield path, value


def readme_log_fields() -> set[str]:
    """The fields the README's "Log records" section documents, nested ones as dotted paths."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Log records", 1)[1].split("\n## ", 1)[0]
    fields: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names = re.findall(r"`([a-z_]+)`", cells[0])
        children = re.findall(r"`\{([a-z_., ]+)\}`", cells[2])
        for name in names:
            if children:
                fields.update(f"{name}.{child.strip()}" for child in children[0].split(","))
            else:
                fields.add(name)
    extras = section.split("The access record adds", 1)[1].split("A caller's", 1)[0]
    fields.update(re.findall(r"`([a-z_]+)`", extras))
    return fields


def app_extra_keys() -> set[str]:
    """Every key the app passes in a literal `extra={...}` to a logging call."""
    keys: set[str] = set()
    for path in (REPO / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "extra" and isinstance(node.value, ast.Dict):
                keys.update(k.value for k in node.value.keys
                            if isinstance(k, ast.Constant) and isinstance(k.value, str))
    return keys
