"""The baseline: the same routes with no instrumentation at all."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine

from bench.apps.routes import add_routes


def create_app(engine: Engine | None = None) -> Flask:
    app = Flask("bench.bare")
    add_routes(app, engine)
    return app
