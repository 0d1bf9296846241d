"""Celery application and the service's background task (asset extraction)."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service.ai import AIProviderError, AssetExtractor
from service.assets import EpisodeNotFoundError, extract_assets
from service.chaos import Chaos
from service.settings import ServiceSettings

EXTRACT_TASK = "service.extract_assets"
_logger = logging.getLogger("service.tasks")


def make_celery(settings: ServiceSettings) -> Celery:
    celery_app = Celery("service", broker=settings.broker_url)
    celery_app.conf.update(
        task_ignore_result=True,
        # A task is acknowledged when done, so a worker lost mid-task means a redelivery, not a loss.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis emulates acks with a visibility timeout: keep retries and countdowns well below it.
        broker_transport_options={"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        # Publishing from a request must fail fast when the broker is down, not hang the request.
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_default_queue="service",
    )
    return celery_app


def register_tasks(celery_app: Celery, engine: Engine, provider: AssetExtractor, chaos: Chaos) -> None:
    @celery_app.task(name=EXTRACT_TASK, bind=True, acks_late=True, shared=False, autoretry_for=(AIProviderError,),
                     retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=3)
    def extract(self: object, episode_id: int) -> int:
        try:
            with Session(engine) as session, session.begin():
                failure_rate = chaos.knobs().provider_failure_rate()
                assets = extract_assets(session, provider, episode_id, failure_rate)
        except EpisodeNotFoundError:
            _logger.warning("episode vanished before extraction", extra={"episode_id": episode_id})
            return 0
        _logger.info("assets extracted", extra={"event": "assets_extracted", "episode_id": episode_id,
                                                "asset_count": len(assets)})
        return len(assets)
