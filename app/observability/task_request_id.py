"""The request id carried into Celery tasks: a message header set when a task is published, read
by the worker (`observability.worker`) when the task starts. Neither side needs Flask."""

from __future__ import annotations

from observability import context

TASK_HEADER = "request_id"


def _add_request_id_header(headers: dict[str, object] | None = None, **_: object) -> None:
    request_id = context.current_request_id()
    if request_id is not None and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def propagate_to_tasks() -> None:
    """Queued Celery tasks carry the current request id in a message header."""
    from celery.signals import before_task_publish  # noqa: PLC0415 - Celery is optional here

    before_task_publish.connect(_add_request_id_header, weak=False, dispatch_uid="observability.request_id")
