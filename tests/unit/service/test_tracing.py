"""The design's custom spans: extract_assets -> load_episode, ai_call, save_assets."""

from __future__ import annotations

from tests.unit.service.conftest import SCRIPT


def test_extraction_spans_nest_under_the_request(make_service, spans) -> None:
    client = make_service(tracing=True).test_client()
    episode_id = client.post("/api/episodes", json={"title": "t", "script": SCRIPT}).get_json()["id"]
    spans.clear()
    assert client.post(f"/api/episodes/{episode_id}/extract").status_code == 200
    finished = {s.name: s for s in spans.get_finished_spans()}
    extract = finished["extract_assets"]
    assert extract.attributes["episode_id"] == episode_id
    assert extract.attributes["script_length"] == len(SCRIPT)
    for child in ("load_episode", "ai_call", "save_assets"):
        assert finished[child].parent.span_id == extract.context.span_id
    assert finished["ai_call"].attributes["provider"] == "simulated"
    server = finished["POST /api/episodes/<id:episode_id>/extract"]
    assert extract.parent.span_id == server.context.span_id
    sql = [s for s in spans.get_finished_spans() if s.attributes.get("db.system") == "sqlite"]
    assert sql, "SQLAlchemy statements must be traced"
