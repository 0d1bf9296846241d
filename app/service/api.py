"""The JSON API: episodes, asset extraction (synchronous and queued) and asset lists."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadGateway, BadRequest, NotFound, ServiceUnavailable
from werkzeug.routing import IntegerConverter

from service.ai import AIProviderError
from service.assets import EpisodeNotFoundError, extract_assets, list_assets
from service.db import Episode
from service.tasks import EXTRACT_TASK

_logger = logging.getLogger("service.api")
_audit = logging.getLogger("audit")
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_DIGITS = re.compile(r"[0-9]{1,9}")
_NOT_BLANK = re.compile(r"[^\t\n\r ]")
TITLE_MAX = 200
SCRIPT_MAX = 100_000
PAGE_MAX = 100

api = Blueprint("api", __name__, url_prefix="/api")


class RowIdConverter(IntegerConverter):
    """A positive id that fits the database's integer column; anything larger is a 404, not a 500."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=2**31 - 1)


class ValidationError(BadRequest):
    """Invalid client input: a 400 with a message, never an alert."""


def _services() -> Any:
    return current_app.extensions["service"]


@api.before_request
def identify_and_disturb() -> None:
    services = _services()
    user_id = request.headers.get("X-User-ID")
    if user_id is not None:
        if not _USER_ID.fullmatch(user_id):
            raise ValidationError("X-User-ID must be 1-64 characters: letters, digits, _ . @ -")
        services.obs.bind_user(user_id)
    services.chaos.disturb_request()


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    return body


def _text_field(body: dict[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    # Blank means JSON's own whitespace only: the same in every regex dialect that reads the
    # description's pattern (Python's str.strip() and ECMAScript's \s disagree on others).
    if not isinstance(value, str) or not _NOT_BLANK.search(value):
        raise ValidationError(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise ValidationError(f"{name} must be at most {limit} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: the insert would fail with a 500
        raise ValidationError(f"{name} must not contain NUL characters")
    return value


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    # ASCII digits, and few: str.isdigit() accepts '²', which int() refuses (a 500), and int() refuses
    # more than 4,300 digits.
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise ValidationError(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _episode_or_404(session: Session, episode_id: int) -> Episode:
    episode = session.get(Episode, episode_id)
    if episode is None:
        raise NotFound(f"episode {episode_id} not found")
    return episode


def _slow_query_knob(session: Session) -> None:
    slow_ms = _services().chaos.knobs().slow_query_ms
    if slow_ms > 0 and session.bind is not None and session.bind.dialect.name == "postgresql":
        session.execute(select(func.pg_sleep(slow_ms / 1000.0)))


@api.post("/episodes")
def create_episode() -> Any:
    body = _json_object()
    title = _text_field(body, "title", TITLE_MAX)
    script = _text_field(body, "script", SCRIPT_MAX)
    with Session(_services().engine) as session, session.begin():
        episode = Episode(title=title, script_content=script, created_by=request.headers.get("X-User-ID"))
        session.add(episode)
        session.flush()
        created = episode.as_dict()
    _audit.info("episode created", extra={"event": "episode_created", "episode_id": created["id"]})
    return jsonify(created), 201


@api.get("/episodes")
def list_episodes() -> Any:
    limit = _int_arg("limit", 20, 1, PAGE_MAX)
    offset = _int_arg("offset", 0, 0, 1_000_000)
    with Session(_services().engine) as session:
        _slow_query_knob(session)
        rows = session.scalars(select(Episode).order_by(Episode.id).limit(limit).offset(offset))
        return jsonify({"episodes": [row.as_dict() for row in rows], "limit": limit, "offset": offset})


@api.get("/episodes/<id:episode_id>")
def get_episode(episode_id: int) -> Any:
    with Session(_services().engine) as session:
        _slow_query_knob(session)
        return jsonify(_episode_or_404(session, episode_id).as_dict(with_script=True))


@api.post("/episodes/<id:episode_id>/extract")
def extract_now(episode_id: int) -> Any:
    services = _services()
    try:
        with Session(services.engine) as session, session.begin():
            failure_rate = services.chaos.knobs().provider_failure_rate()
            assets = [a.as_dict() for a in extract_assets(session, services.provider, episode_id, failure_rate)]
    except EpisodeNotFoundError as missing:
        raise NotFound(f"episode {episode_id} not found") from missing
    except AIProviderError as error:
        _logger.warning("AI provider failed", extra={"event": "ai_call_failed", "episode_id": episode_id})
        raise BadGateway("the AI provider failed; try again later") from error
    return jsonify({"episode_id": episode_id, "assets": assets})


@api.post("/episodes/<id:episode_id>/extract-async")
def extract_later(episode_id: int) -> Any:
    services = _services()
    with Session(services.engine) as session:
        _episode_or_404(session, episode_id)
    try:
        # The short publish retry policy (tasks.py) answers a broker outage in milliseconds;
        # retry=False waited out the 2 s connect timeout, holding a sync worker (fault tests).
        result = services.celery.send_task(EXTRACT_TASK, args=[episode_id], retry=True)
    except Exception as error:
        services.obs.warnings.warn("broker", "task could not be queued", error)
        raise ServiceUnavailable("the task queue is unavailable; try again later") from error
    return jsonify({"episode_id": episode_id, "task_id": result.id, "status": "queued"}), 202


@api.get("/episodes/<id:episode_id>/assets")
def get_assets(episode_id: int) -> Any:
    with Session(_services().engine) as session:
        _episode_or_404(session, episode_id)
        return jsonify({"episode_id": episode_id, "assets": [a.as_dict() for a in list_assets(session, episode_id)]})
