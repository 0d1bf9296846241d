"""The compose variants for the cross-file checks of tests/static/compose/ (see stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.env import fill_secrets
from tests.static.compose.stack import ENV_EXAMPLE, VARIANTS, Stack, load_stack


@pytest.fixture(scope="session")
def filled_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .env as `make up` writes it: .env.example with every secret filled."""
    path = tmp_path_factory.mktemp("compose-variants") / ".env"
    path.write_text(fill_secrets(ENV_EXAMPLE.read_text(), lambda: "dummy-secret-for-compose-check-0123456789"))
    return path


@pytest.fixture(scope="session", params=list(VARIANTS))
def stack(request: pytest.FixtureRequest, filled_env_file: Path) -> Stack:
    """Each variant in turn: the core file, and the core file with each optional fragment."""
    return load_stack(request.param, filled_env_file)
