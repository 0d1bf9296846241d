"""Admin endpoints of the sample service: the chaos knobs (bearer token required)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import ServiceUnavailable

from observability.admin import require_admin_token
from service.api import ValidationError
from service.chaos import ChaosKnobs


def chaos_blueprint(admin_token: str) -> Blueprint:
    blueprint = Blueprint("chaos", __name__, url_prefix="/admin")

    @blueprint.get("/chaos")
    @require_admin_token(admin_token)
    def show() -> Any:
        return jsonify(asdict(current_app.extensions["service"].chaos.knobs()))

    @blueprint.put("/chaos")
    @require_admin_token(admin_token)
    def update() -> Any:
        try:
            knobs = ChaosKnobs.parse(request.get_json(silent=True))
        except ValueError as error:
            raise ValidationError(str(error)) from error
        if not current_app.extensions["service"].chaos.store(knobs):
            raise ServiceUnavailable("chaos knobs cannot be stored while Redis is unavailable")
        return jsonify(asdict(knobs))

    return blueprint
