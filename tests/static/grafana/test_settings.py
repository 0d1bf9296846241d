"""grafana/grafana.ini: no anonymous access, no sign-up, no secret in the file, nothing that calls out
to the internet; docker-compose.yml gives Grafana its admin password and mounts what the settings
and the dashboard provider expect."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "grafana"


@pytest.fixture(scope="module")
def settings() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    parser.read_string((GRAFANA / "grafana.ini").read_text())
    return parser


@pytest.fixture(scope="module")
def grafana_service() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


@pytest.mark.parametrize(("section", "key", "expected"), [
    ("auth.anonymous", "enabled", False),
    ("users", "allow_sign_up", False),
    ("users", "allow_org_create", False),
    ("snapshots", "external_enabled", False),
    ("analytics", "reporting_enabled", False),
    ("analytics", "check_for_updates", False),
    ("analytics", "check_for_plugin_updates", False),
    ("news", "news_feed_enabled", False),
    ("security", "disable_gravatar", True),
    # The Elasticsearch and Jaeger plugins the image ships must stay as they are, offline too.
    ("plugins", "preinstall_auto_update", False),
    ("plugins", "preinstall_disabled", True),
])
def test_setting(settings: configparser.ConfigParser, section: str, key: str, expected: bool) -> None:
    assert settings.getboolean(section, key) is expected


def test_no_secret_is_in_the_file(settings: configparser.ConfigParser) -> None:
    # Without GF_SECURITY_ADMIN_PASSWORD Grafana would fall back to its well-known default password.
    for section, key in [("security", "admin_password"), ("security", "secret_key"), ("database", "password")]:
        assert not settings.has_option(section, key), f"[{section}] {key}"


def test_compose_sets_the_admin_password_from_env(grafana_service: dict[str, Any]) -> None:
    assert grafana_service["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    for name, value in grafana_service["environment"].items():
        assert not (name.startswith("GF_AUTH_ANONYMOUS") and str(value).lower() == "true"), name


def test_compose_mounts_the_settings_provisioning_and_dashboards(grafana_service: dict[str, Any]) -> None:
    mounts = _mounts(grafana_service)
    assert mounts["/etc/grafana/grafana.ini"] == "./grafana/grafana.ini"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    (dashboards,) = provider["providers"]
    assert mounts[dashboards["options"]["path"]] == "./grafana/dashboards"
    provisioned = [target for target in mounts if target.startswith("/etc/grafana/provisioning")]
    for path in (GRAFANA / "provisioning").rglob("*.yml"):
        relative = path.relative_to(GRAFANA / "provisioning")
        target = f"/etc/grafana/provisioning/{relative}"
        assert any(target == t or target.startswith(t + "/") for t in provisioned), f"{relative} is not mounted"


def test_home_dashboard_is_a_provisioned_file(settings: configparser.ConfigParser) -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    (dashboards,) = provider["providers"]
    home = Path(settings.get("dashboards", "default_home_dashboard_path"))
    assert str(home.parent) == dashboards["options"]["path"]
    assert (GRAFANA / "dashboards" / home.name).is_file()


def test_dashboards_are_read_only_code() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert provider["apiVersion"] == 1
    (dashboards,) = provider["providers"]
    assert dashboards["type"] == "file"
    assert dashboards["allowUiUpdates"] is False
    assert dashboards["folder"]
