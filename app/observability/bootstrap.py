"""What every process's instrumentation holds, built the same way in the web process and the
worker: logging, the guarded Redis client, redaction, error aggregation, the notifier and the
active-user gauge. Nothing here imports Flask, so the Celery worker does not load it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Celery

from observability.config import ObservabilityConfig
from observability.degraded import GuardedRedis, ThrottledWarning
from observability.error_aggregation import ErrorAggregator
from observability.logging import configure_logging
from observability.metrics_multiprocess import build_registry, serve
from observability.notifications import Notifier
from observability.redaction import Redactor
from observability.users import ActiveUsers

if TYPE_CHECKING:
    from observability.request_id import RequestHooks


@dataclass
class Observability:
    """A process's instrumentation; `app.extensions["observability"]` in the web app."""

    config: ObservabilityConfig
    redis: GuardedRedis
    warnings: ThrottledWarning
    redactor: Redactor
    errors: ErrorAggregator
    notifier: Notifier
    users: ActiveUsers
    request_hooks: RequestHooks | None = None  # the web process's per-request extension point

    def bind_user(self, user_id: str) -> None:
        """Marks the current request as made by `user_id` (logs, active-user gauge)."""
        self.users.bind_user(user_id)

    def serve_metrics(self, port: int) -> Any:
        """Starts the metrics listener on the configured address (call in the server's parent)."""
        registry = build_registry(self.config.multiproc_dir, extra=[self.users])
        return serve(registry, self.config.metrics_bind_address, port)


def build_observability(config: ObservabilityConfig, celery: Celery | None) -> Observability:
    """The parts shared by both entry points (`init_observability`, `init_worker_observability`)."""
    configure_logging(config)
    warnings = ThrottledWarning(logging.getLogger("observability.degraded"),
                                config.degraded_warning_interval_seconds)
    redis = GuardedRedis(config.redis_url, warnings)
    return Observability(
        config=config,
        redis=redis,
        warnings=warnings,
        redactor=Redactor.from_config(config),
        errors=ErrorAggregator(redis, config.service_namespace, config.error_window_seconds),
        notifier=Notifier(config, redis, warnings, celery),
        users=ActiveUsers(redis, config.service_namespace, config.active_user_window_seconds),
    )
