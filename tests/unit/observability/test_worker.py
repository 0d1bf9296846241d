"""The worker's per-task context: set by task_prerun, ended by task_postrun, and held by nothing
else, so a task whose process never reaches task_postrun leaves nothing behind."""

from __future__ import annotations

import gc
import weakref

from celery.app.task import Context

from observability import context, worker
from observability.metrics import CELERY_TASKS


class FakeTask:
    name = "tests.fake_task"

    def __init__(self, request_id: str | None = None) -> None:
        self.request = Context(id="task-0001", request_id=request_id)


def _count(outcome: str) -> float:
    return CELERY_TASKS.labels(FakeTask.name, outcome)._value.get()


def test_a_task_runs_under_its_request_id_and_its_outcome_is_counted() -> None:
    task = FakeTask(request_id="queued-req-0001")
    before = _count("succeeded")
    worker._task_started(task_id="task-0001", task=task)
    current = context.current()
    assert current is not None and current.request_id == "queued-req-0001" and current.task_id == "task-0001"
    worker._task_finished(task_id="task-0001", task=task, state="SUCCESS")
    assert context.current() is None
    assert _count("succeeded") == before + 1
    worker._task_finished(task_id="task-0001", task=task, state="SUCCESS")  # a second postrun counts nothing
    assert _count("succeeded") == before + 1


def test_a_task_that_never_finishes_leaves_nothing_behind() -> None:
    task = FakeTask()
    worker._task_started(task_id="task-0001", task=task)
    assert getattr(task.request, worker._STATE_ATTRIBUTE) is not None  # the state rides on the request
    context.activate(None)  # what the next task's context would do to this one
    request = weakref.ref(task.request)
    del task  # the process running it died before task_postrun
    gc.collect()
    assert request() is None  # nothing module-level keeps the task's request (or its state) alive
    assert not any(isinstance(value, dict) and "task-0001" in value for value in vars(worker).values())
