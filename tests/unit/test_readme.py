"""The README's tables are checked against the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY

from observability import metrics
from observability.config import SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_with_its_default() -> None:
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "*(empty)*"
        assert f"| `{setting.env}` | {default} |" in README, setting.env


def test_every_documented_setting_exists() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \| ", README, flags=re.MULTILINE))
    assert documented == {setting.env for setting in SETTINGS}


def test_every_metric_is_documented() -> None:
    families = {m.name for m in REGISTRY.collect() if m.name.split("_")[0] in
                {"http", "ai", "db", "celery", "app", "alert"}}
    for family in families:
        exported = f"{family}_total" if f"`{family}_total`" in README else family
        assert f"| `{exported}` |" in README, family
    assert f"| `{metrics.ACTIVE_USERS_NAME}` |" in README
