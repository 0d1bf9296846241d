from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.unit.service.conftest import SCRIPT


def _create(client, **headers):
    return client.post("/api/episodes", json={"title": "Pilot", "script": SCRIPT}, headers=headers)


def test_episode_lifecycle(client) -> None:
    created = _create(client, **{"X-User-ID": "writer-1"})
    assert created.status_code == 201
    episode = created.get_json()
    assert episode["created_by"] == "writer-1" and episode["script_length"] == len(SCRIPT)
    fetched = client.get(f"/api/episodes/{episode['id']}").get_json()
    assert fetched["script"] == SCRIPT
    listed = client.get("/api/episodes?limit=5").get_json()
    assert [e["id"] for e in listed["episodes"]] == [episode["id"]]
    extracted = client.post(f"/api/episodes/{episode['id']}/extract")
    assert extracted.status_code == 200
    names = {(a["kind"], a["name"]) for a in extracted.get_json()["assets"]}
    assert names == {("location", "Kitchen"), ("location", "Harbour"), ("character", "Alice"),
                     ("character", "Bob"), ("prop", "kettle"), ("prop", "letter")}
    assets = client.get(f"/api/episodes/{episode['id']}/assets").get_json()["assets"]
    assert len(assets) == 6
    client.post(f"/api/episodes/{episode['id']}/extract")  # re-extraction replaces, never duplicates
    assert len(client.get(f"/api/episodes/{episode['id']}/assets").get_json()["assets"]) == 6


@pytest.mark.parametrize(("body", "message"), [
    ({"title": "x"}, "script must be a non-empty string"),
    ({"title": "", "script": "s"}, "title must be a non-empty string"),
    ({"title": 5, "script": "s"}, "title must be a non-empty string"),
    ({"title": "x" * 201, "script": "s"}, "title must be at most 200 characters"),
    ([1, 2], "body must be a JSON object"),
])
def test_invalid_bodies_are_400_with_a_message(client, body, message) -> None:
    response = client.post("/api/episodes", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == message


def test_malformed_json_and_wrong_content_type_are_400(client) -> None:
    assert client.post("/api/episodes", data="{bad", content_type="application/json").status_code == 400
    assert client.post("/api/episodes", data="title=x", content_type="text/plain").status_code == 400


def test_oversized_body_is_413(make_service) -> None:
    client = make_service(max_body_bytes=1000).test_client()
    response = client.post("/api/episodes", json={"title": "t", "script": "x" * 5000})
    assert response.status_code == 413
    assert response.is_json


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "offset=-1", "limit=1e3"])
def test_bad_pagination_is_400(client, query) -> None:
    assert client.get(f"/api/episodes?{query}").status_code == 400


@pytest.mark.parametrize("user", ["", "a b", "x" * 65, "bob\r\nX-Injected: 1", "ünïcode"])
def test_bad_user_ids_are_400(client, user) -> None:
    response = client.get("/api/episodes", environ_overrides={"HTTP_X_USER_ID": user})
    assert response.status_code == 400


def test_missing_episode_is_404_everywhere(client) -> None:
    for method, path in [("GET", "/api/episodes/9"), ("POST", "/api/episodes/9/extract"),
                         ("POST", "/api/episodes/9/extract-async"), ("GET", "/api/episodes/9/assets"),
                         # beyond the integer column: found by the property test as a 500 once
                         ("GET", "/api/episodes/99999999999999999999"), ("GET", "/api/episodes/0")]:
        response = client.open(path, method=method)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["status"] == 404


def test_ai_failure_is_502_and_counted(make_service) -> None:
    client = make_service(ai_failure_rate=1.0).test_client()
    episode_id = _create(client).get_json()["id"]
    labels = {"provider": "simulated", "model": "sim-extractor-1", "status": "failed"}
    before = REGISTRY.get_sample_value("ai_calls_total", labels) or 0
    response = client.post(f"/api/episodes/{episode_id}/extract")
    assert response.status_code == 502
    assert REGISTRY.get_sample_value("ai_calls_total", labels) == before + 1


def test_queueing_with_the_broker_down_is_503_not_500(client) -> None:
    episode_id = _create(client).get_json()["id"]
    response = client.post(f"/api/episodes/{episode_id}/extract-async")
    assert response.status_code == 503
    assert response.get_json()["request_id"]


def test_probes(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 503  # Redis is down in unit tests
    assert ready.get_json()["checks"]["database"] == "ok"
    assert ready.get_json()["checks"]["redis"].startswith("failed")


def test_metrics_are_not_served_on_the_public_port(client) -> None:
    assert client.get("/metrics").status_code == 404
