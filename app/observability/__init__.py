"""Observability for Flask services: JSON logs, request ids, access and slow-query logs, error
capture and alerts, Prometheus metrics and OpenTelemetry traces.

One entry point per process: `init_observability(app, ...)` in the web process and
`init_worker_observability(celery_app, ...)` in the Celery worker. The names below are imported
on first use, so that the worker's entry point never loads Flask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from observability.bootstrap import Observability
    from observability.config import ObservabilityConfig
    from observability.web import init_observability
    from observability.worker import init_worker_observability

_HOMES = {
    "Observability": "observability.bootstrap",
    "ObservabilityConfig": "observability.config",
    "init_observability": "observability.web",
    "init_worker_observability": "observability.worker",
}

__all__ = ["Observability", "ObservabilityConfig", "init_observability", "init_worker_observability"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'observability' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
