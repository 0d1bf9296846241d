"""loadgen/locustfile.py without Locust installed: what it sends must be what the service accepts."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from service.chaos import ChaosKnobs

REPO = Path(__file__).resolve().parents[3]
LOCUSTFILE = REPO / "loadgen" / "locustfile.py"


def assigned(name: str) -> Any:
    """The literal value the locustfile assigns to a module-level ``name``."""
    for node in ast.parse(LOCUSTFILE.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not assigned in {LOCUSTFILE.name}")


@pytest.mark.parametrize("knobs", assigned("CHAOS_SCENARIOS"))
def test_every_chaos_scenario_is_accepted_by_the_admin_api(knobs: dict[str, float]) -> None:
    parsed = ChaosKnobs.parse(knobs)
    assert parsed != ChaosKnobs(), f"{knobs} disturbs nothing"


def test_the_missing_episode_id_is_a_valid_id_that_gives_404() -> None:
    assert 0 < assigned("MISSING_EPISODE_ID") <= 2**31 - 1  # larger ids are refused by the route, not looked up


def test_every_requested_path_is_a_route_of_the_service() -> None:
    source = LOCUSTFILE.read_text()
    requested = set(re.findall(r'self\.client\.\w+\(f?"(/[^"?]*)', source))
    assert len(requested) >= 7, requested
    routes = (REPO / "app" / "service" / "api.py").read_text() + (REPO / "app" / "service" / "admin.py").read_text()
    templates = {f"/api{path}" for path in re.findall(r'@api\.\w+\("([^"]+)"', routes)} | {"/admin/chaos"}
    pattern = {re.sub(r"<[^>]+>", "{}", t) for t in templates}
    for path in requested:
        normalised = re.sub(r"\{[^}]+\}", "{}", path)
        assert normalised in pattern, f"the locustfile requests {path}, which is no route of the service"
