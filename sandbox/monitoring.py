"""The native sandbox's Prometheus and Alertmanager configurations, made from the files compose uses.

Prometheus (``.sandbox/prometheus/``, the tree prometheus/README.md describes):

    prometheus.yml      prometheus/prometheus.yml with the global scrape and evaluation interval set
                        to SANDBOX_SCRAPE_INTERVAL (and scrape_timeout no longer than it, which
                        Prometheus requires); every other line as it is
    rules/*.yml         prometheus/rules through prometheus/override_for.py with SANDBOX_ALERT_FOR
    targets/<job>.yml   127.0.0.1 and the ports of .env; [] for a job that does not run natively
    scrape/<job>.yml    the jobs compose finds by DNS (prometheus/scrape/compose/), here one process
                        each, read from its targets/<job>.yml
    data/               the TSDB

Alertmanager (``.sandbox/alertmanager/``): ``config/`` rendered by ``sh alertmanager/render.sh``
from the template (webhook sink, Mailpit, SANDBOX_ALERT_GROUP_*), ``data/`` its notification log
and silences.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from sandbox.env import Settings
from sandbox.net import LOOPBACK

# The port of each scrape job's target natively (a .env key), None where nothing runs natively.
TARGET_PORTS: dict[str, str | None] = {
    "app": "APP_METRICS_PORT",
    "worker": "WORKER_METRICS_PORT",
    "prometheus": "PROMETHEUS_PORT",
    "alertmanager": "ALERTMANAGER_PORT",
    "jaeger": "JAEGER_METRICS_PORT",
    "node": None,  # node-exporter: compose only
}
# Grafana runs only in compose; alert links to its dashboards say so instead of pointing anywhere.
GRAFANA_PLACEHOLDER = "http://grafana-runs-only-with-compose.invalid"
ALERT_EMAIL_FROM = "alerts@localhost"
_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_TIMEOUT = 60.0


def duration_seconds(text: str) -> float:
    """A Prometheus duration (``1m30s``, ``500ms``) in seconds; ValueError if it is not one."""
    parts = _DURATION.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a Prometheus duration")
    return sum(int(n) * _SECONDS[u] for n, u in parts)


def sandbox_prometheus_yml(source: str, interval: str) -> str:
    """``source`` with the global scrape_interval and evaluation_interval set to ``interval``, and
    the global scrape_timeout lowered to it when longer; nothing else changes."""
    seconds = duration_seconds(interval)
    block = re.search(r"^global:\n((?:[ \t]+.*\n|[ \t]*\n)*)", source, re.MULTILINE)
    if block is None:
        raise ValueError("prometheus.yml has no global: block")

    def set_key(text: str, key: str, value: str) -> str:
        pattern = rf"^([ \t]+{key}:[ \t]*)\S+"
        new, count = re.subn(pattern, lambda m: f"{m[1]}{value}", text, count=1, flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f"prometheus.yml's global: block has no {key}")
        return new

    body = set_key(set_key(block[1], "scrape_interval", interval), "evaluation_interval", interval)
    timeout = re.search(r"^[ \t]+scrape_timeout:[ \t]*(\S+)", body, re.MULTILINE)
    if timeout is not None and duration_seconds(timeout[1]) > seconds:
        body = set_key(body, "scrape_timeout", interval)
    result = source[: block.start(1)] + body + source[block.end(1):]
    # The parsed documents must differ in exactly those keys: a layout this code does not expect fails here.
    before, after = yaml.safe_load(source), yaml.safe_load(result)
    changed = {key for key in set(before["global"]) | set(after["global"])
               if before["global"].get(key) != after["global"].get(key)}
    before.pop("global"), after.pop("global")
    if before != after or not changed <= {"scrape_interval", "evaluation_interval", "scrape_timeout"}:
        raise ValueError("rewriting prometheus.yml's global intervals changed more than them")
    return result


def target_files(config: str) -> dict[str, str]:
    """Job name -> its file_sd file (relative path), from prometheus.yml."""
    files: dict[str, str] = {}
    for job in yaml.safe_load(config).get("scrape_configs") or []:
        for sd in job.get("file_sd_configs") or []:
            for name in sd.get("files") or []:
                files[job["job_name"]] = name
    return files


def replicated_jobs(root: Path) -> list[str]:
    """The jobs prometheus.yml leaves to each mode (its scrape_config_files): those compose brings in
    prometheus/scrape/compose/, which the native sandbox writes again under the same names."""
    jobs: list[str] = []
    for path in sorted((root / "prometheus" / "scrape" / "compose").glob("*.yml")):
        jobs += [job["job_name"] for job in (yaml.safe_load(path.read_text()) or {}).get("scrape_configs") or []]
    return jobs


def native_scrape_job(job: str) -> str:
    """A replicated job as the native sandbox runs it: one process, its address in targets/<job>.yml
    (the path is relative to scrape/, where this file goes)."""
    return (f"# Written by the native sandbox: the `{job}` job, one process (compose finds its replicas by DNS).\n"
            f"scrape_configs:\n  - job_name: {job}\n    file_sd_configs:\n      - files: [../targets/{job}.yml]\n")


def write_sandbox_prometheus(s: Settings, home: Path) -> Path:
    """prometheus.yml with the sandbox's interval and rules/ with its shortened `for`s, under ``home``
    (both modes use them); returns the path of prometheus.yml."""
    source_dir = s.root / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "prometheus.yml"
    config.write_text(sandbox_prometheus_yml((source_dir / "prometheus.yml").read_text(), s.scrape_interval))
    overrides = s.alert_for.split()
    done = subprocess.run(  # noqa: S603 - the project's own script
        [sys.executable, str(source_dir / "override_for.py"), str(source_dir / "rules"), str(home / "rules"),
         *overrides], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=_TIMEOUT, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"prometheus/override_for.py failed (SANDBOX_ALERT_FOR={s.alert_for!r}): "
                           f"{done.stderr.strip()}")
    return config


def write_prometheus_config(s: Settings, home: Path) -> Path:
    """The native configuration tree under ``home``; returns the path of its prometheus.yml."""
    config = write_sandbox_prometheus(s, home)
    files = target_files((s.root / "prometheus" / "prometheus.yml").read_text())
    for job in replicated_jobs(s.root):
        files[job] = f"targets/{job}.yml"
        (home / "scrape").mkdir(exist_ok=True)
        (home / "scrape" / f"{job}.yml").write_text(native_scrape_job(job))
    if unknown := sorted(set(files) - set(TARGET_PORTS)):
        raise ValueError(f"prometheus.yml has jobs the native sandbox has no target for: {', '.join(unknown)}")
    for job, relative in files.items():
        port_key = TARGET_PORTS[job]
        targets = f'["{LOOPBACK}:{s.port(port_key)}"]' if port_key else "[]"
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        note = f"{port_key} of .env" if port_key else "not run natively"
        path.write_text(f"# Written by the native sandbox: the `{job}` job ({note}).\n- targets: {targets}\n")
    return config


def alertmanager_env(s: Settings) -> dict[str, str]:
    """The variables of alertmanager/README.md, as the native sandbox sets them."""
    return {
        "ALERT_WEBHOOK_URL": webhook_url(s),
        "ALERT_EMAIL_TO": s.alert_email_to,
        "ALERT_EMAIL_FROM": ALERT_EMAIL_FROM,
        "SMTP_SMARTHOST": f"{LOOPBACK}:{s.smtp_port}",
        "SMTP_REQUIRE_TLS": "false",  # Mailpit speaks plain SMTP
        "GRAFANA_URL": GRAFANA_PLACEHOLDER,
        "ALERT_GROUP_WAIT": s.alert_group_wait,
        "ALERT_GROUP_INTERVAL": s.alert_group_interval,
    }


def webhook_url(s: Settings) -> str:
    """ALERT_WEBHOOK_URL of .env, else the local webhook sink (as compose does)."""
    return s.get("ALERT_WEBHOOK_URL") or f"http://{LOOPBACK}:{s.webhook_sink_port}/hook"


def render_alertmanager(s: Settings, out: Path) -> Path:
    """alertmanager.yml and templates/ under ``out`` through render.sh; returns alertmanager.yml's path."""
    sh = shutil.which("sh") or "/bin/sh"
    source = s.root / "alertmanager"
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    done = subprocess.run(  # noqa: S603 - the project's own script under sh
        [sh, str(source / "render.sh"), str(source), str(out)], env={**os.environ, **alertmanager_env(s)},
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=_TIMEOUT, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"alertmanager/render.sh failed (exit {done.returncode}): {done.stderr.strip()}")
    return out / "alertmanager.yml"
