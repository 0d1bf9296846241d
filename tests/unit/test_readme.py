"""The README's tables are checked against the code they describe."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY

from observability import metrics
from observability.config import SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _configuration_table() -> str:
    """The README's configuration table as `SETTINGS` declares it, row for row."""
    rows = [f"| `{s.env}` | {f'`{s.default}`' if s.default else '*(empty)*'} | {s.description} |" for s in SETTINGS]
    return "\n".join(["| Variable | Default | Meaning |", "|---|---|---|", *rows, ""])


def test_the_configuration_table_is_the_declared_settings() -> None:
    table = _configuration_table()
    assert table in README, f"README's configuration table is not observability.config.SETTINGS; expected:\n{table}"


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


# --- the "Using observability in your Flask app" examples, run as printed -------------------------

_APP_DIR = Path(__file__).resolve().parents[2] / "app"


def _example_blocks() -> list[str]:
    section = README.split("## Using `observability` in your Flask app", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def _run_without_the_sample_service(tmp_path: Path, program: str) -> list[dict]:
    """Runs `program` in a fresh interpreter that sees a copy of the package, not app/ (so no `service`)."""
    shutil.copytree(_APP_DIR / "observability", tmp_path / "copied" / "observability")
    script = tmp_path / "program.py"
    script.write_text(program)
    prelude = (f"import sys; sys.path[:] = [{str(tmp_path / 'copied')!r}] + "
               f"[p for p in sys.path if p not in ({str(_APP_DIR)!r}, '')]; "
               f"exec(compile(open({str(script)!r}).read(), 'program.py', 'exec'))")
    env = {"PATH": os.environ["PATH"], "CELERY_BROKER_URL": "memory://", "REDIS_URL": "redis://127.0.0.1:9/0",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'example.db'}", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", prelude], check=False, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_the_web_example_runs_as_printed_and_logs_the_bound_user(tmp_path: Path) -> None:
    web, _worker = _example_blocks()
    driver = """
@app.get("/hello")
def hello() -> dict:
    return {"hello": "world"}

import observability, sys
assert observability.__file__.startswith(sys.path[0]), observability.__file__
try:
    import service
    raise SystemExit("the sample service is importable")
except ModuleNotFoundError:
    pass
assert app.test_client().get("/hello", headers={"X-User-ID": "reader-1"}).status_code == 200
"""
    records = _run_without_the_sample_service(tmp_path, web + driver)
    (access,) = [r for r in records if r.get("event") == "api_access"]
    assert (access["user_id"], access["status_code"], access["endpoint"]) == ("reader-1", 200, "/hello")


def test_the_worker_example_runs_as_printed_without_importing_flask(tmp_path: Path) -> None:
    _web, worker = _example_blocks()
    driver = """
from observability import process
process.after_fork()  # what a pool child does: the trace exporter and the instrumentations start
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "werkzeug") or m.endswith(".flask"))
assert not loaded, loaded
import logging
logging.getLogger("worker.example").warning("worker ready")
"""
    records = _run_without_the_sample_service(tmp_path, "import sys\n" + worker + driver)
    assert [r["service"]["name"] for r in records if r["message"] == "worker ready"] == ["episodes-worker"]


def test_every_module_of_the_package_has_a_row_in_the_module_table() -> None:
    table = README.split("| Module | Concern |", 1)[1].split("\n\n", 1)[0]
    documented = {name for row in re.findall(r"^\| (.+?) \|", table, flags=re.MULTILINE)
                  for name in re.findall(r"`(\w+)`", row)}
    modules = {path.stem for path in (_APP_DIR / "observability").glob("*.py") if path.stem != "__init__"}
    assert documented == modules
