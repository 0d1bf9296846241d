"""``up``, ``down``, ``status``, ``stop <component>`` and ``start <component>`` of the native sandbox:
the components of ``sandbox.components`` as local processes, their state under ``SANDBOX_DIR`` (``.sandbox/``):

    .sandbox/<component>/       working directory (PostgreSQL cluster, Elasticsearch node, Prometheus
                                configuration and data, Redis dir, metrics dirs, ...)
    .sandbox/logs/<name>.log    each component's output; app.jsonl is the JSON log of app and worker,
                                setup.log the output of setup/provision.py
    .sandbox/run/<name>.pid     pid files (PostgreSQL keeps its own in its data directory)
    .sandbox/endpoints.json     component -> URL, with real credentials (mode 0600), for tests and tools;
                                also "mode": "native" and "app_log_file"

``up`` first makes sure that what the stopped components need is there (the pinned Go tools built,
Elasticsearch downloaded: slow only the first time), then starts each as soon as the components it
names in ``after`` are healthy: the independent ones side by side, so that a warm ``up`` takes about as
long as its slowest chain (Elasticsearch, its setup, the log shipper), not the sum of all starts.
"""

from __future__ import annotations

import sys
import threading
import time

from sandbox import tools
from sandbox.common import log_size, tail, wait_ready
from sandbox.components import Component, app_log_file, docker_only, native
from sandbox.env import Settings
from sandbox.net import port_in_use
from sandbox.urls import Endpoint, endpoints_file, native_endpoints, try_this, write_endpoints

_NAME_WIDTH = 13


def up(s: Settings) -> int:
    """Start every native component that is not running and healthy; 0 when all are."""
    for directory in (s.state_dir, s.logs_dir, s.state_dir / "run"):
        directory.mkdir(parents=True, exist_ok=True)
    if not _install(s):
        return 1
    if not _bring_up_all(native(), s):
        print("The components that came up keep running: `make status` shows them, `make down` stops them.",
              file=sys.stderr)
        return 1
    endpoints = native_endpoints(s, [c.name for c in native()])
    write_endpoints(s, {"mode": "native", **{e.key: e.url for e in endpoints}, "app_log_file": str(app_log_file(s))})
    _print_summary(s, endpoints)
    return 0


def down(s: Settings) -> int:
    """Stop every native component that runs, last started first; 0 unless one could not be stopped."""
    stopped, failed = 0, False
    for component in reversed(native()):
        runner = component.runner
        assert runner is not None  # native() has runners only
        pid = runner.pid(component.name, s)
        if pid is None:
            continue
        print(f"stopping {component.name} (pid {pid}) ...", end=" ", flush=True)
        started = time.monotonic()
        try:
            how = runner.stop(component.name, s)
        except Exception as exc:  # report it, and still stop the others
            print(f"FAILED: {exc}")
            failed = True
            continue
        print(f"stopped in {time.monotonic() - started:.1f}s ({how})")
        stopped += 1
    endpoints_file(s).unlink(missing_ok=True)  # nothing answers at those URLs any more
    if not stopped and not failed:
        print("Nothing is running.")
    return 1 if failed else 0


def stop_component(s: Settings, name: str) -> int:
    """Stop one component, leaving the others (and endpoints.json) alone: a fault to inject."""
    component = _named(name)
    if component is None:
        return 2
    runner = component.runner
    assert runner is not None
    pid = runner.pid(component.name, s)
    if pid is None:
        print(f"{component.name} is not running.")
        return 0
    print(f"stopping {component.name} (pid {pid}) ...", end=" ", flush=True)
    started = time.monotonic()
    how = runner.stop(component.name, s)
    print(f"stopped in {time.monotonic() - started:.1f}s ({how})")
    return 0


def start_component(s: Settings, name: str) -> int:
    """Start one component (after ``stop``) and wait until it is healthy; one that runs and is
    healthy is left alone. The components it depends on must be running."""
    component = _named(name)
    if component is None:
        return 2
    assert component.runner is not None
    if component.runner.pid(component.name, s) is None:
        try:
            component.ensure_installed(s)
        except Exception as exc:
            print(f"{component.name}: {exc}", file=sys.stderr)
            return 1
    return 0 if _bring_up(component, s) else 1


def _named(name: str) -> Component | None:
    """The native component called ``name``, or None after saying why there is none."""
    found = [c for c in native() if c.name == name]
    if found:
        return found[0]
    if name in {c.name for c in docker_only()}:
        print(f"{name} runs only in the compose stack.", file=sys.stderr)
    else:
        print(f"No component {name!r}; the native ones: {', '.join(c.name for c in native())}.", file=sys.stderr)
    return None


def status(s: Settings) -> int:
    """One line per native component: running or stopped, pid, health."""
    for component in native():
        assert component.runner is not None
        pid = component.runner.pid(component.name, s)
        if pid is None:
            print(f"{component.name:<{_NAME_WIDTH}} stopped")
            continue
        problem = _health_problem(component, s)
        health = "healthy" if problem is None else f"unhealthy: {problem}"
        print(f"{component.name:<{_NAME_WIDTH}} running  pid {pid:<8} {health}")
    _print_not_native()
    return 0


def _install(s: Settings) -> bool:
    """What the components that do not run yet need before they start; False (and why) when it fails.

    Their Go programs first, in one run of tools/build.sh, which builds them side by side."""
    pending = [c for c in native() if c.runner is not None and c.runner.pid(c.name, s) is None]
    try:
        tools.ensure([c.go_tool for c in pending if c.go_tool is not None])
    except Exception as exc:  # a missing toolchain or a failed build: nothing is started
        print(f"tools: {exc}", file=sys.stderr)
        return False
    for component in pending:
        try:
            component.install(s)  # its Go program is built by now
        except Exception as exc:  # a missing program or a failed download: nothing is started
            print(f"{component.name}: {exc}", file=sys.stderr)
            return False
    return True


_say_lock = threading.Lock()


def _say(line: str, *, error: bool = False) -> None:
    """One whole line at a time: components start side by side."""
    with _say_lock:
        print(line, file=sys.stderr if error else sys.stdout, flush=True)


def _bring_up_all(components: list[Component], s: Settings) -> bool:
    """Bring every component up, each once those it comes ``after`` are; True when all are up."""
    finished = {c.name: threading.Event() for c in components}
    came_up: dict[str, bool] = {}

    def bring_up(component: Component) -> None:
        try:
            for name in component.after:
                if name in finished:
                    finished[name].wait()
            failed = [name for name in component.after if not came_up.get(name, True)]
            if failed:
                _say(f"{component.name}: not started, as {', '.join(failed)} did not come up", error=True)
            came_up[component.name] = not failed and _bring_up(component, s)
        except Exception as exc:  # a thread's failure is reported, and fails `up`
            _say(f"{component.name}: {type(exc).__name__}: {exc}", error=True)
            came_up[component.name] = False
        finally:
            finished[component.name].set()

    threads = [threading.Thread(target=bring_up, args=(c,), name=f"up-{c.name}", daemon=True) for c in components]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return all(came_up.get(c.name, False) for c in components)


def _bring_up(component: Component, s: Settings) -> bool:
    runner = component.runner
    assert runner is not None
    pid = runner.pid(component.name, s)
    if pid is not None:
        problem = _health_problem(component, s)
        if problem is None:
            _say(f"{component.name} ... already running (pid {pid})")
            return True
        _say(f"{component.name} ... running (pid {pid}) but unhealthy ({problem}): restarting")
        runner.stop(component.name, s)
    busy = [f"{key}={s[key]}" for key in component.ports if port_in_use(s.port(key))]
    if busy:
        _say(f"{component.name}: port in use by another program: {', '.join(busy)}; "
             f"stop that program or choose another port in {s.env_file}", error=True)
        return False
    return _start(component, s)


def _start(component: Component, s: Settings) -> bool:
    runner = component.runner
    assert runner is not None and component.health is not None
    health = component.health
    log = runner.log(component.name, s)
    offset = log_size(log)  # show what this start wrote, not an older run's lines

    def log_tail() -> str:
        return tail(log, since=offset)

    _say(f"starting {component.name}")
    began = time.monotonic()
    try:
        started = runner.start(component.name, s)
        wait_ready(lambda: health(s), component.name, log_tail, exited=started.exited, timeout=s.start_timeout)
    except Exception as exc:  # any failure ends `up` with the reason and the log, not a traceback
        _say(f"{component.name} FAILED")
        message = str(exc)
        if "log tail ---" not in message:
            message += f"\n--- server log tail ---\n{log_tail()}"
        _say(f"{component.name}: {message}\n(whole log: {log})", error=True)
        _stop_quietly(component, s)
        return False
    note = f" ({started.note})" if started.note else ""
    _say(f"{component.name} ready in {time.monotonic() - began:.1f}s{note}")
    return component.setup is None or _set_up(component, s)


def _set_up(component: Component, s: Settings) -> bool:
    assert component.setup is not None
    began = time.monotonic()
    try:
        what = component.setup(s)
    except Exception as exc:
        _say(f"setting up {component.name} FAILED")
        _say(f"{component.name}: {exc}", error=True)
        _stop_quietly(component, s)  # the next `up` starts it again, and sets it up again
        return False
    _say(f"{component.name} set up in {time.monotonic() - began:.1f}s ({what})")
    return True


def _stop_quietly(component: Component, s: Settings) -> None:
    """Stop a component that failed to start, so that its port is free for the next attempt."""
    assert component.runner is not None
    try:
        component.runner.stop(component.name, s)
    except Exception as exc:
        _say(f"{component.name}: could not stop it either: {exc}", error=True)


def _health_problem(component: Component, s: Settings) -> str | None:
    assert component.health is not None
    try:
        component.health(s)
    except Exception as exc:  # every way of failing a check means "unhealthy"
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return None


def _print_summary(s: Settings, endpoints: list[Endpoint]) -> None:
    print("\nThe sandbox runs (native processes, all on 127.0.0.1):")
    width = max(len(e.label) for e in endpoints)
    for endpoint in endpoints:
        print(f"  {endpoint.label:<{width}}  {endpoint.shown}")
    print(f"Credentials: {s.env_file} (*_PASSWORD, ADMIN_TOKEN); the URLs with them: {endpoints_file(s)}")
    print(f"Logs: {s.logs_dir}/ (app.jsonl: the JSON records of the app and the worker)")
    _print_not_native()
    print("\n".join(try_this(s, native=True)))


def _print_not_native() -> None:
    print(f"Docker only (compose): {', '.join(c.title for c in docker_only())}.")
