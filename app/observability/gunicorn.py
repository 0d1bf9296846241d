"""gunicorn server hooks; the project's `gunicorn.conf.py` shows the wiring.

The app is preloaded in the master, which wipes the shared metrics directory, serves `/metrics`
on its own port from a thread (scrapes never take a worker and survive worker restarts), and folds
a dead worker's metric files into the archive (`metrics_multiprocess.mark_dead`). Each worker starts its
per-process parts (trace exporter) after fork.

Before each fork the master's objects (the whole preloaded app) are frozen (`gc.freeze`): a worker's
full collections then skip them instead of stopping one request for tens of milliseconds (micro-
benchmark (e) in bench/), and their memory pages stay shared with the master.
"""

from __future__ import annotations

import gc
from typing import Any

from gunicorn import glogging

from observability import process
from observability.bootstrap import Observability
from observability.config import ObservabilityConfig
from observability.logging import configure_logging
from observability.metrics_multiprocess import mark_dead, prepare_multiproc_dir
from observability.redaction import RedactingFilter, Redactor


def _observability(server: Any) -> Observability:
    return server.app.wsgi().extensions["observability"]


def on_starting(server: Any) -> None:
    directory = _observability(server).config.multiproc_dir
    if not directory:
        # Without it each worker counts alone and the master would serve its own empty registry.
        raise RuntimeError("PROMETHEUS_MULTIPROC_DIR must be set before gunicorn starts")
    prepare_multiproc_dir(directory)


def when_ready(server: Any) -> None:
    obs = _observability(server)
    obs.serve_metrics(obs.config.metrics_port)


def pre_fork(_server: Any, _worker: Any) -> None:
    gc.freeze()


def post_fork(_server: Any, _worker: Any) -> None:
    process.after_fork()


def child_exit(server: Any, worker: Any) -> None:
    mark_dead(worker.pid, _observability(server).config.multiproc_dir)


class JsonLogger(glogging.Logger):
    """gunicorn's logger with its records routed through the project's JSON handlers."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        config = ObservabilityConfig.from_env()
        configure_logging(config)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True
        # gunicorn quotes a malformed request line, query string and all, in its warning.
        for old in [f for f in self.error_log.filters if isinstance(f, RedactingFilter)]:
            self.error_log.removeFilter(old)
        self.error_log.addFilter(RedactingFilter(Redactor.from_config(config)))
