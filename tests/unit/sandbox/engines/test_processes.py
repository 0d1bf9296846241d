"""Background processes of the sandbox: found again through pid files, stopped as a group."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sandbox.engines import processes
from sandbox.webhook_sink import WebhookSink

# A parent with a child (in the parent's process group), like gunicorn with its workers.
_PARENT_AND_CHILD = ("import subprocess, sys, time; "
                     "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
# A process that ignores SIGTERM: only SIGKILL ends it.
_STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             "print('ready', flush=True); time.sleep(60)")


def _spawn(code: str, tmp_path: Path) -> int:
    process = processes.spawn([sys.executable, "-c", code], env=os.environ, cwd=tmp_path, log=tmp_path / "p.log",
                              pidfile=tmp_path / "p.pid")
    return process.pid


def test_pidfile_finds_the_process_and_stop_ends_its_whole_group(tmp_path: Path) -> None:
    pid = _spawn(_PARENT_AND_CHILD, tmp_path)
    assert processes.read_pidfile(tmp_path / "p.pid") == pid
    assert os.getpgid(pid) == pid  # its own process group, so it outlives `make up`
    assert processes.stop_group(pid, timeout=10) == "SIGTERM"
    assert not processes.group_alive(pid)
    assert processes.read_pidfile(tmp_path / "p.pid") is None
    assert not (tmp_path / "p.pid").exists()  # a stale pid file is removed


def test_a_group_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    pid = _spawn(_STUBBORN, tmp_path)
    deadline = time.monotonic() + 10
    while "ready" not in (tmp_path / "p.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # the handler is installed once it says so
    assert processes.stop_group(pid, timeout=0.5) == "SIGKILL"
    assert not processes.alive(pid)


def test_a_reused_pid_is_not_taken_for_ours(tmp_path: Path) -> None:
    # Our own pid with another start time: the process that wrote the file is gone.
    (tmp_path / "p.pid").write_text(f"{os.getpid()} 1\n")
    assert processes.read_pidfile(tmp_path / "p.pid") is None


def test_loopback_is_added_to_no_proxy_and_the_users_entries_are_kept() -> None:
    env = processes.loopback_without_proxy(
        {"HTTP_PROXY": "http://proxy.internal:3128", "NO_PROXY": "corp.example, localhost", "PATH": "/bin"})
    assert env["NO_PROXY"] == env["no_proxy"] == "corp.example,localhost,127.0.0.1,::1"
    assert env["HTTP_PROXY"] == "http://proxy.internal:3128"
    assert env["PATH"] == "/bin"


def test_a_spawned_python_client_reaches_loopback_past_a_proxy_from_the_environment() -> None:
    # The environment names a proxy that refuses every connection; requests must not go there.
    sink = WebhookSink().start_background()
    try:
        code = f"import requests; print(requests.post('{sink.url}/hook', json={{'text': 'hi'}}, timeout=5).status_code)"
        env = {**processes.loopback_without_proxy({**os.environ, "no_proxy": "", "NO_PROXY": ""}),
               "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30,
                              check=False)
    finally:
        sink.shutdown()
        sink.server_close()
    assert done.stdout.strip() == "200", done.stderr[-2000:]
