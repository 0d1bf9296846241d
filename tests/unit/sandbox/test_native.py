"""`up` of the native sandbox with stand-in components: installs first, setup after health, each
component after those it names, the independent ones side by side, the record."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox import native
from sandbox.common import MissingToolError
from sandbox.components import Component
from sandbox.engines.processes import Started
from sandbox.env import Settings, load_settings
from sandbox.urls import Endpoint


@dataclass
class FakeRunner:
    events: list[str]
    running: set[str] = field(default_factory=set)

    def pid(self, name: str, _s: Settings) -> int | None:
        return 4242 if name in self.running else None

    def start(self, name: str, _s: Settings) -> Started:
        self.events.append(f"start {name}")
        self.running.add(name)
        return Started(lambda: False)

    def stop(self, name: str, _s: Settings) -> str:
        self.events.append(f"stop {name}")
        self.running.discard(name)
        return "stopped"

    def log(self, name: str, s: Settings) -> Path:
        return s.log(name)


def _settings(tmp_path: Path) -> Settings:
    return load_settings(environ={"SANDBOX_DIR": str(tmp_path / "state"), "SANDBOX_ENV_FILE": str(tmp_path / ".env"),
                                  "SANDBOX_START_TIMEOUT": "5"})


def _component(name: str, runner: FakeRunner, events: list[str], *, install_error: Exception | None = None,
               setup_error: Exception | None = None, after: tuple[str, ...] = ()) -> Component:
    def install(_s: Settings) -> None:
        events.append(f"install {name}")
        if install_error is not None:
            raise install_error

    def setup(_s: Settings) -> str:
        events.append(f"setup {name}")
        if setup_error is not None:
            raise setup_error
        return "set up"

    return Component(name, name, runner, health=lambda _s: None, install=install, setup=setup, after=after)


def _endpoints(_s: Settings, components: list[str]) -> list[Endpoint]:
    """Stand-ins for the rows of sandbox.urls: one URL per component."""
    return [Endpoint(name, name, f"http://127.0.0.1/{name}", name) for name in components]


def test_installs_come_before_any_start_and_setup_after_health(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    events: list[str] = []
    runner = FakeRunner(events)
    monkeypatch.setattr(native, "native",
                        lambda: [_component("a", runner, events), _component("b", runner, events, after=("a",))])
    monkeypatch.setattr(native, "native_endpoints", _endpoints)
    s = _settings(tmp_path)
    assert native.up(s) == 0
    assert events == ["install a", "install b", "start a", "setup a", "start b", "setup b"]
    out = capsys.readouterr().out
    assert "a ready in " in out and "a set up in " in out
    record = json.loads((s.state_dir / "endpoints.json").read_text())
    assert record == {"mode": "native", "a": "http://127.0.0.1/a", "b": "http://127.0.0.1/b",
                      "app_log_file": str(s.logs_dir.absolute() / "app.jsonl")}

    events.clear()
    assert native.up(s) == 0  # running and healthy: neither installed, nor started, nor set up again
    assert events == []


class MeetingRunner(FakeRunner):
    """A runner whose ``a`` starts only once ``b`` has started: only side-by-side starts get through."""

    def __init__(self, events: list[str]) -> None:
        super().__init__(events)
        self.b_started = threading.Event()

    def start(self, name: str, s: Settings) -> Started:
        if name == "b":
            self.b_started.set()
        elif name == "a" and not self.b_started.wait(timeout=5):
            raise RuntimeError("b did not start while a was starting")
        return super().start(name, s)


def test_independent_components_start_side_by_side_and_dependents_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    runner = MeetingRunner(events)
    components = [_component("a", runner, events), _component("b", runner, events),
                  _component("c", runner, events, after=("a", "b"))]
    monkeypatch.setattr(native, "native", lambda: components)
    monkeypatch.setattr(native, "native_endpoints", _endpoints)
    assert native.up(_settings(tmp_path)) == 0
    assert events[-2:] == ["start c", "setup c"]  # after both a and b were up and set up
    assert {"setup a", "setup b"} <= set(events[:-2])


def test_a_failed_install_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    events: list[str] = []
    runner = FakeRunner(events)
    failing = _component("b", runner, events, install_error=MissingToolError("no mvn here"))
    monkeypatch.setattr(native, "native", lambda: [_component("a", runner, events), failing])
    assert native.up(_settings(tmp_path)) == 1
    assert events == ["install a", "install b"]
    assert "b: no mvn here" in capsys.readouterr().err


def test_a_failed_setup_stops_its_component_and_ends_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    events: list[str] = []
    runner = FakeRunner(events)
    failing = _component("a", runner, events, setup_error=RuntimeError("provision.py failed"))
    monkeypatch.setattr(native, "native", lambda: [failing, _component("b", runner, events, after=("a",))])
    s = _settings(tmp_path)
    assert native.up(s) == 1
    assert events == ["install a", "install b", "start a", "setup a", "stop a"]
    captured = capsys.readouterr()
    assert "setting up a FAILED" in captured.out and "a: provision.py failed" in captured.err
    assert "b: not started, as a did not come up" in captured.err
    assert not (s.state_dir / "endpoints.json").exists()


def test_stop_and_start_one_component_leave_the_others_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    events: list[str] = []
    runner = FakeRunner(events, running={"a", "b"})
    monkeypatch.setattr(native, "native", lambda: [_component("a", runner, events), _component("b", runner, events)])
    s = _settings(tmp_path)
    s.state_dir.mkdir(parents=True)
    native.endpoints_file(s).write_text("{}")
    assert native.stop_component(s, "b") == 0
    assert native.stop_component(s, "b") == 0  # stopped already: nothing to do
    assert native.start_component(s, "b") == 0
    assert native.start_component(s, "b") == 0  # running and healthy: left alone
    assert events == ["stop b", "install b", "start b", "setup b"]
    assert runner.running == {"a", "b"}
    assert native.endpoints_file(s).exists()  # the others still answer at their URLs
    out = capsys.readouterr().out
    assert "b is not running." in out and "b ... already running" in out


def test_stop_and_start_name_a_native_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    events: list[str] = []
    monkeypatch.setattr(native, "native", lambda: [_component("a", FakeRunner(events), events)])
    s = _settings(tmp_path)
    assert native.stop_component(s, "nope") == 2
    assert "No component 'nope'; the native ones: a." in capsys.readouterr().err
    assert native.start_component(s, "logstash") == 2
    assert "logstash runs only in the compose stack." in capsys.readouterr().err
    assert events == []
