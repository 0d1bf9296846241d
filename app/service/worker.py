"""Celery worker entry point: `celery -A service.worker:celery_app worker`."""

from __future__ import annotations

from observability import init_worker_observability
from service import make_chaos, make_provider
from service.db import ensure_schema, make_engine
from service.settings import ServiceSettings
from service.tasks import make_celery, register_tasks

settings = ServiceSettings.from_env()
engine = make_engine(settings.database_url)
celery_app = make_celery(settings)
obs = init_worker_observability(celery_app, engine=engine)
ensure_schema(engine)
register_tasks(celery_app, engine, make_provider(settings), make_chaos(obs, settings))
