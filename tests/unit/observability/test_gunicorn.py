"""gunicorn's hooks that need no server: the garbage collector's freeze before each fork."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

from observability import gunicorn as hooks

CONF = Path(__file__).resolve().parents[3] / "app" / "gunicorn.conf.py"


def test_the_master_freezes_its_objects_before_each_fork() -> None:
    gc.unfreeze()
    try:
        hooks.pre_fork(None, None)
        assert gc.get_freeze_count() > 10_000  # this test process's modules, as the master's preloaded app
    finally:
        gc.unfreeze()


def test_the_configuration_hands_gunicorn_the_hook() -> None:
    """gunicorn reads hooks as module-level names of its configuration file."""
    module = ast.parse(CONF.read_text())
    imported = {alias.name for node in module.body if isinstance(node, ast.ImportFrom)
                and node.module == "observability.gunicorn" for alias in node.names}
    exported = next(ast.literal_eval(node.value) for node in module.body if isinstance(node, ast.Assign)
                    and any(isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets))
    assert "pre_fork" in imported and "pre_fork" in exported
