"""Observability for Flask services: JSON logs, request ids, access and slow-query logs, error
capture and alerts, Prometheus metrics and OpenTelemetry traces.

One entry point per process: `init_observability(app, ...)` in the web process and
`init_worker_observability(celery_app, ...)` in the Celery worker.
"""

from observability.config import ObservabilityConfig
from observability.web import Observability, init_observability
from observability.worker import init_worker_observability

__all__ = ["Observability", "ObservabilityConfig", "init_observability", "init_worker_observability"]
