"""extensions/otel-collector: the collector runs with the same feature gates in compose and natively."""

from __future__ import annotations

from pathlib import Path

import yaml

from sandbox import components
from sandbox.env import load_settings

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "extensions" / "otel-collector" / "docker-compose.otel-collector.yml"


def _gates(argv: list[str]) -> set[str]:
    return {gate for arg in argv if arg.startswith("--feature-gates=")
            for gate in arg.removeprefix("--feature-gates=").split(",")}


def test_both_modes_enable_the_synchronous_log_emitter() -> None:
    """Without it a SIGKILLed collector loses the lines its receiver held but had marked as read."""
    command = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["otel-collector"]["command"]
    native = components._otelcol_argv(load_settings(REPO))
    assert "stanza.synchronousLogEmitter" in _gates(command)
    assert _gates(command) == _gates(native)
