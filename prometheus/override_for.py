"""Copy the rule files with some alerts' `for:` replaced, for a sandbox that cannot wait 5 minutes.

The rule files in prometheus/rules/ stay the production ones. At start, the native sandbox writes
the rules Prometheus loads into its own directory through this script, which changes nothing but
the `for:` of the alerts it is told about; rule files without such an alert are copied byte for
byte. An alert name that is in no rule file is an error, so a renamed alert cannot silently keep
its production `for:` in a test that counts on a short one.

    python prometheus/override_for.py SOURCE_DIR DEST_DIR [ALERT=DURATION ...]
    python prometheus/override_for.py prometheus/rules .sandbox/prometheus/rules HighErrorRate=30s

Every rule of that name is changed (HighErrorRate's critical and warning twins alike). The same
overrides as one string, for an environment variable: "HighErrorRate=30s TargetDown=30s"
(`parse_overrides`). Needs PyYAML.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

# Prometheus's duration syntax: units from years down to milliseconds, each at most once, in order.
_DURATION = re.compile(r"^(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")


def parse_overrides(text: str) -> dict[str, str]:
    """`"A=30s B=1m"` (spaces or commas between) -> `{"A": "30s", "B": "1m"}`; ValueError if malformed."""
    overrides: dict[str, str] = {}
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        name, sep, duration = item.partition("=")
        if not sep or not name or not _DURATION.match(duration):
            raise ValueError(f"override {item!r} is not ALERT=DURATION (a Prometheus duration such as 30s or 1m30s)")
        overrides[name] = duration
    return overrides


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so that the written expressions stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _override(doc: dict[str, Any], overrides: dict[str, str]) -> set[str]:
    changed = set()
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert")
            if name in overrides:
                rule["for"] = overrides[name]
                changed.add(name)
    return changed


def write_rules(source: Path, dest: Path, overrides: dict[str, str]) -> None:
    """Write every *.yml of `source` into `dest`, with `for:` of the named alerts replaced.

    Checks everything before writing anything: on a ValueError, `dest` is left as it was."""
    files = []
    found: set[str] = set()
    for path in sorted(source.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        changed = _override(doc, overrides)
        files.append((path, doc, changed))
        found |= changed
    if unknown := sorted(set(overrides) - found):
        raise ValueError(f"no alert named {', '.join(unknown)} in {source}")
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.yml"):  # a rule file removed from the source must not linger
        stale.unlink()
    for path, doc, changed in files:
        if changed:
            header = f"# Written from {path.name} with `for:` overridden for: {', '.join(sorted(changed))}.\n"
            text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120)
            (dest / path.name).write_text(header + text, encoding="utf-8")
        else:
            shutil.copyfile(path, dest / path.name)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        write_rules(Path(argv[0]), Path(argv[1]), parse_overrides(" ".join(argv[2:])))
    except ValueError as exc:
        print(f"override_for: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
