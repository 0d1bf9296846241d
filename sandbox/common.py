"""Helpers shared by the sandbox, the tests' and the benchmarks' servers: waiting for a server to
answer, the tail of its log."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

LOG_TAIL_LINES = 40
_TAIL_BYTES = 64 * 1024  # logs grow for as long as the sandbox lives: read only their end


class MissingToolError(RuntimeError):
    """A program the servers need is not installed; the message names the package that has it."""


def wait_ready(
    probe: Callable[[], object],
    what: str,
    log_tail: Callable[[], str],
    exited: Callable[[], bool] = lambda: False,
    timeout: float = 30.0,
    *,
    fatal: tuple[type[Exception], ...] = (),
) -> None:
    """Call ``probe`` until it succeeds; on timeout or early exit raise RuntimeError with the log tail.

    Exceptions of a ``fatal`` type are raised at once: waiting cannot mend them (a wrong password).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return
        except fatal:
            raise
        except Exception as exc:  # refused or reset connections are normal while a server boots
            last_error = exc
        if exited():
            problem = "exited while starting"
        elif time.monotonic() > deadline:
            problem = f"did not answer within {timeout:.0f}s"
        else:
            time.sleep(0.1)
            continue
        raise RuntimeError(f"{what} {problem} (last error: {last_error!r})\n--- server log tail ---\n{log_tail()}")


def tail(log: Path, lines: int = LOG_TAIL_LINES, since: int = 0) -> str:
    """The last ``lines`` lines of ``log`` written after byte ``since``, or why there are none."""
    try:
        with log.open("rb") as file:
            size = file.seek(0, 2)
            file.seek(max(since, size - _TAIL_BYTES))
            text = file.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or f"(nothing written to {log})"


def log_size(log: Path) -> int:
    """Where the next start's output begins in ``log``."""
    try:
        return log.stat().st_size
    except OSError:
        return 0

