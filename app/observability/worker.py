"""Entry point for the Celery worker: `init_worker_observability(celery_app, ...)`.

Logging goes through the same JSON formatter (Celery's own set-up is replaced), each task runs with
a context holding its task id and the request id it was queued under, task outcomes and durations
are metrics, and the prefork pool's children start their trace exporter after fork. The metrics
listener runs in the worker's main process, which forks the pool and never runs tasks.
"""

from __future__ import annotations

import os
import time
from contextvars import Token
from typing import Any

from celery import Celery, signals
from sqlalchemy.engine import Engine

from observability import context, process
from observability.bootstrap import Observability, build_observability
from observability.config import ObservabilityConfig
from observability.logging import configure_logging
from observability.metrics import CELERY_TASK_DURATION, CELERY_TASKS
from observability.metrics_multiprocess import mark_dead, prepare_multiproc_dir
from observability.redaction import hide_bound_values_in_errors
from observability.slow_queries import watch_engine
from observability.task_request_id import TASK_HEADER, propagate_to_tasks

_OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}


def init_worker_observability(
    celery_app: Celery,
    *,
    config: ObservabilityConfig | None = None,
    engine: Engine | None = None,
) -> Observability:
    """Without `config`: the environment's settings under the worker's own service name
    (WORKER_SERVICE_NAME); a `config` given is used as it is."""
    config = config or ObservabilityConfig.from_env().as_worker()
    obs = build_observability(config, celery_app)
    process.defer_until_fork()
    if engine is not None:
        hide_bound_values_in_errors(engine)
        watch_engine(engine, config.slow_query_threshold_ms, config.statement_max_chars, obs.redactor)
    propagate_to_tasks()
    _connect_process_signals(obs, engine)
    _connect_task_signals()
    return obs


def _connect_process_signals(obs: Observability, engine: Engine | None) -> None:
    config = obs.config

    def keep_our_logging(**_: Any) -> None:
        configure_logging(config)  # connecting at all stops Celery from installing its handlers

    def start_worker(sender: Any = None, **_: Any) -> None:
        prepare_multiproc_dir(config.multiproc_dir)
        obs.serve_metrics(config.worker_metrics_port)
        if "prefork" not in str(getattr(sender, "pool_cls", "prefork")).lower():
            process.after_fork()  # solo or thread pools: tasks run in this very process

    def start_child(**_: Any) -> None:
        if engine is not None:
            engine.dispose(close=False)  # connections opened before fork belong to the parent
        process.after_fork()

    def child_gone(pid: int | None = None, **_: Any) -> None:
        mark_dead(pid or os.getpid(), config.multiproc_dir)

    if config.tracing_enabled:
        from observability import tracing  # noqa: PLC0415 - OpenTelemetry is loaded only when used

        def start_tracing() -> None:
            tracing.start_provider(config)
            tracing.instrument_libraries(config, engine=engine)

        process.start(start_tracing)

    signals.setup_logging.connect(keep_our_logging, weak=False)
    signals.worker_init.connect(start_worker, weak=False)
    signals.worker_process_init.connect(start_child, weak=False)
    signals.worker_process_shutdown.connect(child_gone, weak=False)


# Where a task's context token and start time wait for the end of the task: on the task's own
# request, not in a module-level map, so that nothing outlives a task whichever way it ends (a map
# entry stayed behind when the process running the task never reached task_postrun).
_STATE_ATTRIBUTE = "_observability_state"


def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    request_id = getattr(task.request, TASK_HEADER, None) or task_id
    ctx = context.RequestContext(request_id, task_id=task_id, task_name=task.name)
    ctx.started = time.perf_counter()
    setattr(task.request, _STATE_ATTRIBUTE, (context.activate(ctx), ctx.started))


def _task_finished(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    if task is None:
        return
    entry: tuple[Token[context.RequestContext | None], float] | None = getattr(task.request, _STATE_ATTRIBUTE, None)
    if entry is None:
        return
    setattr(task.request, _STATE_ATTRIBUTE, None)
    token, started = entry
    CELERY_TASK_DURATION.labels(task.name).observe(time.perf_counter() - started)
    CELERY_TASKS.labels(task.name, _OUTCOMES.get(state or "", "other")).inc()
    context.deactivate(token)


def _connect_task_signals() -> None:
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="observability.task_started")
    signals.task_postrun.connect(_task_finished, weak=False, dispatch_uid="observability.task_finished")
