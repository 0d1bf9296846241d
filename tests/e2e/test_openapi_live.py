"""The running app does what its description says, seen from outside: schemathesis's own command line
against `/openapi.json` of the stack under test, over HTTP, with every check and the admin token.

The unit suite fuzzes the app in process (tests/unit/service/test_openapi.py); this run also sees
gunicorn, the real PostgreSQL, Redis and broker, and the checks that need a live server (stateful
links between operations, data the description allows being accepted and data it forbids being
refused). Replacing the chaos knobs is left out: random knobs would inject the very 5xx answers the
checks refuse, for every other test of the session too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.e2e_stack import Provider

EXAMPLES_PER_OPERATION = 30  # about 900 cases in all: half a minute against the native sandbox
LEFT_OUT = "setChaos"


def _schemathesis() -> list[str]:
    beside_python = Path(sys.executable).with_name("schemathesis")  # the virtualenv's, when run from it
    return [str(beside_python)] if beside_python.exists() else [shutil.which("schemathesis") or "schemathesis"]


def test_the_running_app_does_what_its_openapi_description_says(provider: Provider, tmp_path: Path) -> None:
    app = provider.url("app")
    command = [*_schemathesis(), "run", f"{app}/openapi.json", "--checks", "all",
               "--header", f"Authorization: Bearer {provider.settings.admin_token}",
               "--exclude-operation-id", LEFT_OUT, "--max-examples", str(EXAMPLES_PER_OPERATION),
               "--generation-deterministic", "--no-color",
               "--report", "junit", "--report-junit-path", str(tmp_path / "schemathesis.xml")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    summary = done.stdout[-6000:]
    assert done.returncode == 0, f"schemathesis found drift between /openapi.json and the app:\n{summary}"
    assert "No issues found" in done.stdout, summary
