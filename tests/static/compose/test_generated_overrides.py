"""The overrides `python -m sandbox` writes (sandbox/compose.py), loaded with every compose variant as
compose loads them.

- Docker engines older than 25 (Debian 12's docker.io is 20.10): no healthcheck.start_interval, and a
  probe every COMPAT_HEALTH_INTERVAL_SECONDS at most where the file relied on start_interval.
- The sandbox's shortcuts: Prometheus's configuration and rules replaced (not mounted twice), the rest
  of every service as the files have it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from sandbox.compose import COMPAT_HEALTH_INTERVAL_SECONDS, sandbox_override, start_interval_override
from sandbox.env import load_settings
from tests.static.compose.stack import REPO, VARIANTS
from tests.support.tools import tool_path


def _project(files: list[Path], env_file: Path) -> dict:
    command = [str(tool_path("compose-check")), "-env-file", str(env_file), "-project-dir", str(REPO), *map(str, files)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, f"compose-check refused {[f.name for f in files]}:\n{done.stderr}"
    return json.loads(done.stdout)["project"]


def _seconds(duration: str) -> float:
    return float(duration.removesuffix("s")) if duration.endswith("s") and not duration.endswith("ms") else 0.0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_override_loads_and_leaves_no_start_interval(variant: str, filled_env_file: Path,
                                                         tmp_path: Path) -> None:
    files = list(VARIANTS[variant])
    override = tmp_path / "override.yml"
    override.write_text(start_interval_override(files))
    before = _project(files, filled_env_file)["services"]
    after = _project([*files, override], filled_env_file)["services"]
    assert set(after) == set(before)
    relied = {name for name, service in before.items() if "start_interval" in (service.get("healthcheck") or {})}
    assert relied, "no service uses start_interval any more: the override can go"
    for name, service in after.items():
        check = service.get("healthcheck") or {}
        assert "start_interval" not in check, name
        if name in relied:
            # compose-check prints durations as Go does: "5s", "15s".
            assert _seconds(check["interval"]) <= COMPAT_HEALTH_INTERVAL_SECONDS, (name, check["interval"])
            assert check["test"] == before[name]["healthcheck"]["test"]  # only the timing changes


def test_every_start_interval_of_the_files_is_reset_by_the_override() -> None:
    files = [path for variant in VARIANTS.values() for path in variant]
    reset = yaml.load(start_interval_override(files), Loader=_Loader)["services"]
    declared = {name for path in set(files) for name, service in (yaml.safe_load(path.read_text())["services"]).items()
                if "start_interval" in ((service or {}).get("healthcheck") or {})}
    assert set(reset) == declared


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!reset", lambda _loader, _node: None)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_sandbox_override_replaces_prometheus_configuration(variant: str, filled_env_file: Path,
                                                                 tmp_path: Path) -> None:
    files = list(VARIANTS[variant])
    override = tmp_path / "sandbox.yml"
    override.write_text(sandbox_override(load_settings(environ={"SANDBOX_ENV_FILE": str(filled_env_file)}), tmp_path))
    before = _project(files, filled_env_file)["services"]
    after = _project([*files, override], filled_env_file)["services"]
    mounts = {volume["target"]: volume["source"] for volume in after["prometheus"]["volumes"]}
    assert len(mounts) == len(after["prometheus"]["volumes"])  # each target once
    assert mounts["/etc/prometheus/prometheus.yml"] == str(tmp_path / "prometheus" / "prometheus.yml")
    assert mounts["/etc/prometheus/rules"] == str(tmp_path / "prometheus" / "rules")
    assert len(after["prometheus"]["volumes"]) == len(before["prometheus"]["volumes"])
    for name in ("app", "worker", "alertmanager"):
        added = set(after[name]["environment"]) - set(before[name]["environment"])
        assert added <= {"OTEL_BSP_SCHEDULE_DELAY", "ALERT_GROUP_WAIT", "ALERT_GROUP_INTERVAL"}, (name, added)
    untouched = set(before) - {"prometheus", "app", "worker", "alertmanager"}
    assert {name: after[name] for name in untouched} == {name: before[name] for name in untouched}
