from __future__ import annotations

import pytest


def test_chaos_is_off_without_a_token(client) -> None:
    assert client.get("/admin/chaos").status_code == 404
    assert client.put("/admin/chaos", json={"error_rate": 1}).status_code == 404


@pytest.fixture
def admin(make_service):
    return make_service(admin_token="t0ken-for-tests").test_client(), {"Authorization": "Bearer t0ken-for-tests"}


def test_chaos_requires_the_token(admin) -> None:
    client, _ = admin
    assert client.get("/admin/chaos").status_code == 401
    assert client.get("/admin/chaos", headers={"Authorization": "Bearer t0ken-for-test"}).status_code == 401


@pytest.mark.parametrize("body", [
    {"error_rate": 2}, {"error_rate": -0.1}, {"latency_ms": 10**6}, {"unknown": 1}, {"error_rate": "1"},
    {"error_rate": True}, [1], None,
])
def test_invalid_knobs_are_400(admin, body) -> None:
    client, headers = admin
    assert client.put("/admin/chaos", json=body, headers=headers).status_code == 400


def test_valid_knobs_with_redis_down_are_503(admin) -> None:
    client, headers = admin
    response = client.put("/admin/chaos", json={"error_rate": 0.5}, headers=headers)
    assert response.status_code == 503
    assert client.get("/admin/chaos", headers=headers).get_json()["error_rate"] == 0.0
