"""The same routes instrumented by this project's `observability` package, as a service wires it."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine

from bench.apps.routes import add_routes
from observability import init_observability
from observability.config import ObservabilityConfig


def create_app(config: ObservabilityConfig, engine: Engine | None = None) -> Flask:
    app = Flask("bench.project")
    init_observability(app, config=config, engine=engine)  # first, before the app's own hooks
    add_routes(app, engine)
    return app
