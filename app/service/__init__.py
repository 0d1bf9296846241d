"""The sample service: episodes with scripts, assets extracted by an AI provider.

`create_app()` builds the Flask app; `service.worker` is the Celery worker's entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery
from flask import Flask, current_app
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from werkzeug.middleware.proxy_fix import ProxyFix

from observability import Observability, ObservabilityConfig, init_observability, process
from observability.errors import json_error
from service.admin import chaos_blueprint
from service.ai import AssetExtractor, SimulatedProvider
from service.api import RowIdConverter, api
from service.chaos import Chaos
from service.db import ensure_schema, make_engine
from service.health import health
from service.openapi import openapi_blueprint
from service.request_body import BoundedRequest, StrictJSONProvider
from service.settings import ServiceSettings
from service.tasks import make_celery


@dataclass
class Services:
    settings: ServiceSettings
    engine: Engine
    celery: Celery
    obs: Observability
    provider: AssetExtractor
    chaos: Chaos


def make_provider(settings: ServiceSettings) -> AssetExtractor:
    if settings.ai_provider != "simulated":
        raise ValueError(f"unknown AI_PROVIDER {settings.ai_provider!r}; only 'simulated' ships")
    return SimulatedProvider(settings.ai_model, settings.ai_latency_ms, settings.ai_failure_rate)


def make_chaos(obs: Observability, settings: ServiceSettings) -> Chaos:
    return Chaos(obs.redis, f"{obs.config.service_name}:chaos", settings.chaos_refresh_seconds)


def create_app(settings: ServiceSettings | None = None, config: ObservabilityConfig | None = None) -> Flask:
    settings = settings or ServiceSettings.from_env()
    app = Flask("service", static_folder=None)  # no static files: no undocumented /static route
    app.json = StrictJSONProvider(app)  # NaN, Infinity and deep nesting in a body are a 400, not a 500
    app.request_class = BoundedRequest  # a chunked body past MAX_BODY_BYTES is a 413, not cut short
    app.url_map.converters["id"] = RowIdConverter
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    engine = make_engine(settings.database_url)
    celery_app = make_celery(settings)
    obs = init_observability(app, config=config, celery=celery_app, engine=engine)
    ensure_schema(engine)
    process.start(lambda: engine.dispose(close=False))  # pool connections stay with their process
    app.extensions["service"] = Services(settings, engine, celery_app, obs, make_provider(settings),
                                         make_chaos(obs, settings))
    app.register_blueprint(health)
    app.register_blueprint(api)
    app.register_blueprint(chaos_blueprint(settings.admin_token))
    app.register_blueprint(openapi_blueprint(obs.config.service_name, obs.config.service_version))
    app.register_error_handler(OperationalError, _database_unavailable)
    if settings.trusted_proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops)  # type: ignore[method-assign]
    return app


def _database_unavailable(error: OperationalError) -> Any:
    current_app.extensions["service"].obs.warnings.warn("database", "database unavailable", error)
    return json_error(503, "Service Unavailable", "the database is unavailable; try again later")


