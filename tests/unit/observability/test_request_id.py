from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from observability import init_observability
from observability.request_id import accept_or_generate

HOSTILE_IDS = [
    'abc12345\n{"level":"CRITICAL","message":"forged"}',
    "a" * 10_000,
    "идентификатор-12345",
    "short",
    "",
    "-leading-dash-1234",
    "spaces are bad 1234",
]


def test_safe_ids_are_kept() -> None:
    for value in ("abcd1234", "0f8e2c1a-9b7d-4e3f-8a6b-1c2d3e4f5a6b", "svc:req@2026.11.27-01", "A" * 128):
        assert accept_or_generate(value) == value


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_unsafe_ids_are_replaced(value: str) -> None:
    generated = accept_or_generate(value)
    assert generated != value
    assert len(generated) == 32 and all(c in "0123456789abcdef" for c in generated)


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_hostile_request_ids_get_a_4xx_or_2xx_never_a_500_nor_a_forged_record(demo, log_lines, value) -> None:
    app, _ = demo
    response = app.test_client().get("/ok", environ_overrides={"HTTP_X_REQUEST_ID": value})
    assert response.status_code == 200
    echoed = response.headers["X-Request-ID"]
    assert echoed != value and len(echoed) == 32
    records = log_lines.read()
    assert [r["event"] for r in records] == ["api_access"]
    assert records[0]["request_id"] == echoed


def test_the_id_is_echoed_and_on_every_record_of_the_request(demo, log_lines) -> None:
    app, _ = demo
    response = app.test_client().get("/boom", headers={"X-Request-ID": "trace-me-123"})
    assert response.headers["X-Request-ID"] == "trace-me-123"
    assert response.get_json()["request_id"] == "trace-me-123"
    records = [r for r in log_lines.read() if r["logger"] != "observability.degraded"]
    assert {r["request_id"] for r in records} == {"trace-me-123"}
    assert {r["event"] for r in records} == {"unhandled_exception", "api_access"}


def test_generated_ids_differ_per_request(demo) -> None:
    app, _ = demo
    client = app.test_client()
    ids = {client.get("/ok").headers["X-Request-ID"] for _ in range(20)}
    assert len(ids) == 20


class _CountingFlask(Flask):
    """Records what Flask hands to `ensure_sync`, its per-call coroutine check."""

    checked: list[Any]

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        self.checked.append(func)
        return super().ensure_sync(func)


def test_own_hooks_skip_flasks_coroutine_check_and_everything_else_keeps_it(make_config) -> None:
    app = _CountingFlask(__name__)
    app.checked = []
    init_observability(app, config=make_config())

    @app.before_request
    def users_hook() -> None:
        return None

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    response = app.test_client().get("/ok")
    assert response.status_code == 200
    assert response.headers["X-Request-ID"]  # the skipped hooks ran
    assert users_hook in app.checked and ok in app.checked
    assert not [f for f in app.checked if f.__module__ == "observability.request_id"]


class _UnhashableView:
    __hash__ = None  # type: ignore[assignment] - what defining __eq__ alone does

    def __eq__(self, other: object) -> bool:
        return self is other

    def __call__(self) -> str:
        return "served"


def test_an_unhashable_view_is_still_served(make_config) -> None:
    app = Flask(__name__)
    init_observability(app, config=make_config())
    app.add_url_rule("/view", "view", _UnhashableView())
    response = app.test_client().get("/view")
    assert (response.status_code, response.text) == (200, "served")


def test_the_context_opens_before_every_hook_and_closes_after_every_teardown_with_its_error(make_config) -> None:
    from observability import context

    app = Flask(__name__)
    init_observability(app, config=make_config())
    seen: list[tuple[str, bool, object]] = []

    @app.before_request
    def users_before() -> None:
        seen.append(("before", context.current() is not None, None))

    @app.after_request
    def users_after(response: Any) -> Any:
        seen.append(("after", "X-Request-ID" in response.headers, None))  # the id is set after every hook
        return response

    @app.teardown_request
    def users_teardown(error: BaseException | None) -> None:
        seen.append(("teardown", context.current() is not None, error))

    @app.get("/boom")
    def boom() -> str:
        raise LookupError("gone")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert app.test_client().get("/boom").status_code == 500
    assert [(step, open_or_set) for step, open_or_set, _ in seen] == [("before", True), ("after", False),
                                                                      ("teardown", True)]
    assert context.current() is None  # closed after the last teardown hook
    with app.test_request_context("/"):
        try:
            raise KeyError("handled")
        except KeyError as error:
            app.preprocess_request()
            app.do_teardown_request()  # no error given: the one being handled, as Flask's own default
            assert seen[-1] == ("teardown", True, error)
    assert context.current() is None


@pytest.mark.parametrize("set_by_view", [[], ["x-request-id"], ["X-Request-ID", "X-REQUEST-ID"]])
def test_the_echoed_id_replaces_any_the_view_set(make_config, set_by_view: list[str]) -> None:
    app = Flask(__name__)
    init_observability(app, config=make_config())

    @app.get("/ok")
    def ok() -> Any:
        return "ok", 200, [("X-Before", "1"), *((name, "from-the-view") for name in set_by_view), ("X-After", "2")]

    response = app.test_client().get("/ok", headers={"X-Request-ID": "given-by-the-client-1"})
    assert response.headers.getlist("X-Request-ID") == ["given-by-the-client-1"]
    assert [name for name, _ in response.headers if name in ("X-Before", "X-Request-ID", "X-After")] == (
        ["X-Before", "X-Request-ID", "X-After"] if set_by_view else ["X-Before", "X-After", "X-Request-ID"])
