"""`process.in_each_forked_child`: a hook for every fork, which never keeps its object alive."""

from __future__ import annotations

import gc
import os
import weakref

from observability import process


class _Marker:
    def __init__(self) -> None:
        self.renewed_in = 0
        process.in_each_forked_child(self.renew)

    def renew(self) -> None:
        self.renewed_in = os.getpid()


def _child_exit_code(check: object) -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0 if check() else 1)  # type: ignore[operator]
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_method_runs_in_every_child_and_never_in_the_parent() -> None:
    marker = _Marker()
    for _ in range(2):
        assert _child_exit_code(lambda: marker.renewed_in == os.getpid()) == 0
    assert marker.renewed_in == 0


def test_the_hook_does_not_keep_its_object_alive() -> None:
    gone = weakref.ref(_Marker())
    gc.collect()
    assert gone() is None  # a hook holding the bound method itself would keep it
