"""A minimal Flask app with the instrumentation, for tests of the package alone."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request

from observability import Observability, ObservabilityConfig, init_observability


def build_demo_app(config: ObservabilityConfig) -> tuple[Flask, Observability]:
    app = Flask("demo")
    app.config["MAX_CONTENT_LENGTH"] = 1024
    obs = init_observability(app, config=config)

    @app.get("/ok")
    def ok() -> Any:
        return {"ok": True}

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        if item_id > 100:
            abort(404)
        return {"id": item_id}

    @app.post("/echo")
    def echo() -> Any:
        return {"size": len(request.get_data())}

    @app.get("/boom")
    def boom() -> Any:
        raise ZeroDivisionError("division by zero in order 12345")

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "alive"}

    return app, obs
