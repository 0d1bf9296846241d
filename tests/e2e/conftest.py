"""The end-to-end tests' stacks: every test runs against each provider, the compose stack and then a
native sandbox (``tests/support/e2e_stack.py`` says how each is started); ``E2E_PROVIDERS=native`` (or
``compose``) runs one. A provider that cannot run here (no Docker engine, no images) skips with the
reason, except in CI (``CI=true``), where both must run.

Tests ask for endpoints by name through ``endpoint("prometheus")``; a name the provider does not
offer skips the test with "not in this provider: <mode>" (and, in compose, why its service was left
out), except in CI for a name the native sandbox must offer: there it fails. The time each signal
takes to become visible is collected in ``visibility`` per provider, printed at the end of the session and written to
``<SANDBOX_DIR>/visibility-<mode>.json`` (the user's sandbox directory, ``.sandbox/`` by default: the
native sandbox under test lives in a temporary directory that is deleted at the end; when a test
failed, its logs are kept in ``<SANDBOX_DIR>/e2e-logs/<mode>/``). E2E_KEEP_SANDBOX=1 keeps the whole
temporary directory (its processes are stopped all the same).

The fault tests (``test_faults.py``) stop and start parts of the stack: they run last, and their
figures go to ``reliability`` (printed, and written to ``<SANDBOX_DIR>/reliability.json``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.instrumentation.requests import RequestsInstrumentor

from sandbox.env import load_settings
from tests.support.e2e_clients import Jaeger, LogFile, Mailpit, Prometheus, WebhookSink
from tests.support.e2e_stack import (
    NATIVE_ENDPOINTS,
    PROVIDERS,
    Provider,
    ProviderError,
    ProviderUnavailable,
    in_ci,
    start_provider,
)
from tests.support.faults import Reliability
from tests.support.visibility import Visibility

HERE = Path(__file__).parent
# pytest-timeout counts fixture setup: whichever test comes first also waits for the stack to start.
START_BUDGET_SECONDS = 1800
DEFAULT_TEST_TIMEOUT_SECONDS = 300
_VISIBILITY = {mode: Visibility() for mode in PROVIDERS}
_RELIABILITY = Reliability()
# Run last in their provider's group, in this order: faults stop parts of the stack, the lifecycle ends it.
LAST_MODULES = ("test_faults.py", "test_compose_lifecycle.py")
_STATE_DIR_KEY = pytest.StashKey[Path]()
_SESSION_LOG: dict[str, LogFile | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: runs against the whole stack (compose, or the native sandbox)")


def selected_providers() -> list[str]:
    chosen = [name.strip() for name in os.environ.get("E2E_PROVIDERS", ",".join(PROVIDERS)).split(",") if name.strip()]
    if unknown := set(chosen) - set(PROVIDERS):
        raise pytest.UsageError(f"E2E_PROVIDERS: unknown {sorted(unknown)}; known: {', '.join(PROVIDERS)}")
    return chosen


def _run_order(item: pytest.Item) -> tuple[int, int]:
    """One provider after the other (each stack started once), and within each the faults, then the
    lifecycle, last: the other tests need the whole stack up, and a fault's after-effects (an alert
    still firing, Redis emptied) must not meet them."""
    callspec = getattr(item, "callspec", None)
    mode = callspec.params.get("provider") if callspec else None
    path = Path(item.fspath)
    last = LAST_MODULES.index(path.name) + 1 if path.name in LAST_MODULES and path.is_relative_to(HERE) else 0
    return (PROVIDERS.index(mode) if mode in PROVIDERS else -1, last)


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture parameters
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Only the e2e tests move, within the places they had: the rest of the session keeps its order.
    slots = [n for n, item in enumerate(items) if Path(item.fspath).is_relative_to(HERE)]
    for slot, item in zip(slots, sorted((items[n] for n in slots), key=_run_order), strict=True):
        items[slot] = item  # sorted() is stable: each group keeps its order
    for item in items:
        if Path(item.fspath).is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)
            own = item.get_closest_marker("timeout")
            budget = own.args[0] if own and own.args else DEFAULT_TEST_TIMEOUT_SECONDS
            item.add_marker(pytest.mark.timeout(budget + START_BUDGET_SECONDS), append=False)


@pytest.fixture(scope="session", autouse=True)
def uninstrumented_clients() -> None:
    """The e2e tests are clients from outside the stack: the package's `requests` instrumentation, which
    tests that ran earlier in this process may have installed, must not give the app's spans a parent."""
    instrumentor = RequestsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture(scope="session", params=selected_providers())
def provider(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Iterator[Provider]:
    started = time.monotonic()
    stack, problem, unavailable = None, "", False
    try:
        stack = start_provider(request.param)
    except ProviderUnavailable as exc:
        problem, unavailable = str(exc), True
    except ProviderError as exc:  # the stack is there but did not start: a failure to look at
        problem = str(exc)
    if stack is None:  # outside the except blocks: no "during handling of the above exception"
        if unavailable and not in_ci():
            pytest.skip(problem)
        pytest.fail(f"CI=true, so this may not skip: {problem}" if unavailable else problem, pytrace=False)
    elapsed = time.monotonic() - started
    _VISIBILITY[stack.mode].mode = stack.mode
    _VISIBILITY[stack.mode].start_seconds = round(elapsed, 1) if stack.owned else None
    pytestconfig.stash[_STATE_DIR_KEY] = load_settings().state_dir
    failed_before = request.session.testsfailed
    try:
        _SESSION_LOG[stack.mode] = stack.app_log()  # this session's records start here
        yield stack
    finally:
        # A failure's evidence outlives the temporary sandbox: its logs go to <SANDBOX_DIR>/e2e-logs/.
        failed = request.session.testsfailed > failed_before
        stack.stop(keep_logs=load_settings().state_dir / "e2e-logs" / stack.mode if failed else None)


@pytest.fixture(scope="session")
def endpoint(provider: Provider) -> Callable[[str], str]:
    """``endpoint(name)``: the provider's URL (or address, or path) for ``name``, or a skip with the reason."""

    def get(name: str) -> str:
        if provider.has(name):
            return provider.url(name)
        if provider.mode == "native" and name in NATIVE_ENDPOINTS and in_ci():
            pytest.fail(f"CI=true, so nothing native may skip: the native sandbox offers no {name!r} "
                        f"(its endpoints: {sorted(provider.urls)})", pytrace=False)
        pytest.skip(provider.missing_reason(name))

    return get


@pytest.fixture(scope="session")
def sink(endpoint: Callable[[str], str]) -> WebhookSink:
    return WebhookSink(endpoint("webhook_sink"))


@pytest.fixture(scope="session")
def mailpit(endpoint: Callable[[str], str]) -> Mailpit:
    return Mailpit(endpoint("mailpit"))


@pytest.fixture(scope="session")
def prometheus(endpoint: Callable[[str], str]) -> Prometheus:
    return Prometheus(endpoint("prometheus"))


@pytest.fixture(scope="session")
def jaeger(endpoint: Callable[[str], str]) -> Jaeger:
    return Jaeger(endpoint("jaeger"))


@pytest.fixture(scope="session")
def visibility(provider: Provider) -> Visibility:
    return _VISIBILITY[provider.mode]


@pytest.fixture(scope="session")
def reliability() -> Reliability:
    return _RELIABILITY


@pytest.fixture(scope="session")
def session_log(provider: Provider) -> LogFile | None:
    """The app's log from the moment the session's stack was ready (``Provider.app_log``); None when
    the records are searched in Elasticsearch instead (compose with the Elastic stack)."""
    return _SESSION_LOG.get(provider.mode)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    state_dir = config.stash.get(_STATE_DIR_KEY, None)
    write = state_dir is not None and not os.environ.get("E2E_NO_VISIBILITY_FILE")
    _report_reliability(terminalreporter, state_dir if write else None)
    for mode, visibility in _VISIBILITY.items():
        if not visibility.measurements:
            continue
        terminalreporter.section(f"time to visibility ({mode} provider)")
        started = visibility.start_seconds
        terminalreporter.write_line(f"the stack: {'already running' if started is None else f'started in {started}s'}")
        terminalreporter.write_line(visibility.table())
        if write:
            path = state_dir / f"visibility-{mode}.json"
            visibility.write(path)
            terminalreporter.write_line(f"written to {path}")


def _report_reliability(terminalreporter: pytest.TerminalReporter, state_dir: Path | None) -> None:
    if not _RELIABILITY.faults:
        return
    terminalreporter.section("faults (each line names its provider)")
    for line in _RELIABILITY.lines():
        terminalreporter.write_line(line)
    if state_dir is not None:
        _RELIABILITY.write(state_dir / "reliability.json")
        terminalreporter.write_line(f"written to {state_dir / 'reliability.json'}")


@pytest.fixture(scope="session")
def no_background_traffic(provider: Provider) -> Iterator[None]:
    """Exact counts need the test's requests alone: the compose stack's load generator is paused
    (and started again after the session if it ran). The native sandbox has none."""
    if provider.mode != "compose":
        yield
        return
    running = provider.compose("ps", "--status", "running", "--services", timeout=60).stdout.split()
    paused = "loadgen" in running
    if paused:
        done = provider.compose("stop", "loadgen", timeout=120)
        assert done.returncode == 0, done.stderr
    try:
        yield
    finally:
        if paused:
            provider.compose("start", "loadgen", timeout=120)
