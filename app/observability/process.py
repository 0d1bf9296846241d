"""Per-process start-up, deferred past fork where a server forks workers.

gunicorn (with `preload_app`) and Celery's prefork pool import the application in a parent process
and fork workers from it. Exporter threads and sockets must be created in each worker, not in the
parent, so their start is queued: `defer_until_fork()` in the parent, `after_fork()` in each child.
A process that never forks (tests, `flask run`, scripts) starts everything at once.
`in_each_forked_child` is for state that every child needs anew (locks, connection pools).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable

_pending: list[Callable[[], None]] = []
_deferred = False


def defer_until_fork() -> None:
    global _deferred  # noqa: PLW0603 - process-wide switch, set once by the server's config
    _deferred = True


def after_fork() -> None:
    """Runs queued start-up in a freshly forked worker; later starts run at once."""
    global _deferred  # noqa: PLW0603
    _deferred = False
    while _pending:
        _pending.pop(0)()


def start(callback: Callable[[], None]) -> None:
    if _deferred:
        _pending.append(callback)
    else:
        callback()


def in_each_forked_child(method: Callable[[], None]) -> None:
    """Calls the bound `method` in every child forked from now on, while its object lives.

    A fork hook cannot be unregistered, so it holds the object only through a weak reference.
    """
    reference = weakref.WeakMethod(method)

    def call_in_child() -> None:
        if (alive := reference()) is not None:
            alive()

    os.register_at_fork(after_in_child=call_in_child)
