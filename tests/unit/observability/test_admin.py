"""The admin token check: constant time through `hmac.compare_digest` on equal-length digests, so
neither the token's bytes nor its length can be read from response times. Checked by reading the
source and by spying on the comparison, not by timing (which is too noisy to prove anything)."""

from __future__ import annotations

import ast
import inspect

import pytest

from observability import admin
from tests.support.demo_app import build_demo_app

TOKEN = "s3cret-admin-token-0123456789"


@pytest.fixture
def client(make_config):
    app, _ = build_demo_app(make_config(admin_token=TOKEN))
    return app.test_client()


@pytest.fixture
def comparisons(monkeypatch) -> list[tuple[int, int]]:
    """The lengths of both sides of every `hmac.compare_digest` call admin.py makes."""
    seen: list[tuple[int, int]] = []
    real = admin.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(admin.hmac, "compare_digest", spy)
    return seen


def test_the_module_compares_with_compare_digest_and_never_with_equality() -> None:
    tree = ast.parse(inspect.getsource(admin))
    calls = {f"{node.func.value.id}.{node.func.attr}" for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and isinstance(node.func.value, ast.Name)}
    assert "hmac.compare_digest" in calls
    equalities = [ast.unparse(node) for node in ast.walk(tree)
                  if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)]
    # The only equality allowed is on the scheme name, which is not secret.
    assert equalities == ["scheme.lower() == 'bearer'"]


@pytest.mark.parametrize("authorization", [
    None,                                   # no header
    "",                                     # empty header
    "Bearer",                               # scheme only
    "Bearer ",                              # empty token
    "Bearer x",                             # much shorter
    f"Bearer {TOKEN[:-1]}",                 # one character short
    f"Bearer {TOKEN}x",                     # one character long
    f"Bearer {'x' * len(TOKEN)}",           # right length, wrong bytes
    f"Bearer {TOKEN[:-1]}X",                # right length, last byte wrong
    f"Bearer {'x' * 10_000}",              # very long
    f"Basic {TOKEN}",                       # right token, wrong scheme
    f"Bearer  {TOKEN}",                     # two spaces: the token would start with one
    f"Bearer {TOKEN}\u00e9",                # non-ASCII
])
def test_every_refusal_costs_one_equal_length_comparison(client, comparisons, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/admin/errors", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert response.get_json()["error"]["status"] == 401
    assert comparisons == [(32, 32)]


def test_the_right_token_passes_through_the_same_comparison(client, comparisons) -> None:
    response = client.get("/admin/errors", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code != 401  # 503 here: the error store (Redis) is down in unit tests
    assert comparisons == [(32, 32)]


def test_no_token_configured_means_no_admin_endpoints(make_config, comparisons) -> None:
    app, _ = build_demo_app(make_config(admin_token=""))
    assert app.test_client().get("/admin/errors", headers={"Authorization": "Bearer "}).status_code == 404
    assert comparisons == []


def test_token_matches_directly() -> None:
    expected = admin._digest(TOKEN)
    assert admin.token_matches(f"Bearer {TOKEN}", expected)
    assert admin.token_matches(f"BEARER {TOKEN}", expected)
    assert not admin.token_matches(TOKEN, expected)
    assert not admin.token_matches(f"Bearer {TOKEN} ", expected)
