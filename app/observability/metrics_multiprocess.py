"""The multiprocess side of the metrics: the shared directory's lifecycle, the archive of dead
processes' values, the merged registry, and the separate listener that serves it.

Under gunicorn or Celery's prefork pool each process writes its samples to files in
`PROMETHEUS_MULTIPROC_DIR`, and the listener, running in the parent process so that scrapes never
take a worker, merges them. The directory is wiped when the server starts; a dead worker's live
gauges are dropped and its counters and histograms are folded into one archive file per type
(`mark_dead`), so totals survive restarts and scrapes do not slow down with them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.registry import Collector


def prepare_multiproc_dir(path: str) -> None:
    """Empties the shared directory: samples of a previous run must not be merged into this one."""
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


_MERGED_TYPES = ("counter", "histogram")  # summed across processes; gauges keep a pid label
_ARCHIVE = "archive"  # stands where a pid would in the file name: `counter_archive.db`
_LOCK_FILE = ".merge.lock"  # not *.db: never read as metrics


def mark_dead(pid: int, path: str) -> None:
    """A worker process is gone: its live gauges are dropped, and its counters and histograms are
    added into one archive file per type and its own files deleted.

    The client library never deletes a dead worker's files and every scrape reads all of them
    (about 2.6 ms each), so without this a server that recycles workers scrapes slower and slower.
    Totals stay exact: the values move, under a lock that scrapes take too (`build_registry`).
    """
    if not path:
        return
    with _merge_lock(path, exclusive=True):
        multiprocess.mark_process_dead(pid, path)
        for kind in _MERGED_TYPES:
            _move_into_archive(os.path.join(path, f"{kind}_{pid}.db"), os.path.join(path, f"{kind}_{_ARCHIVE}.db"))


def _move_into_archive(dead_file: str, archive_file: str) -> None:
    # Renamed first (no longer *.db): a crash part-way loses one worker's counts, never counts twice.
    moving = dead_file + ".merging"
    try:
        os.rename(dead_file, moving)
    except FileNotFoundError:
        return
    archive = MmapedDict(archive_file)
    try:
        for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(moving):
            total, _ = archive.read_value(key)
            archive.write_value(key, total + value, 0.0)
    finally:
        archive.close()
    os.unlink(moving)


# Held by a thread of this process while it holds the merge lock, and by fork(): a child forked
# while a scrape held the shared lock would inherit the lock with the descriptor and keep it for
# its whole life, and the master's next `mark_dead` would wait for that worker to exit.
_NOT_DURING_FORK = threading.Lock()
os.register_at_fork(before=_NOT_DURING_FORK.acquire, after_in_parent=_NOT_DURING_FORK.release,
                    after_in_child=_NOT_DURING_FORK.release)


@contextlib.contextmanager
def _merge_lock(path: str, *, exclusive: bool) -> Iterator[None]:
    # flock, not a threading lock: Celery's pool children archive their own files at exit.
    with _NOT_DURING_FORK, open(os.path.join(path, _LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


class _ArchiveAwareCollector(multiprocess.MultiProcessCollector):
    """Reads the directory while no dead worker's values are being moved into the archive."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        super().__init__(registry, path=path)
        self._directory = path

    def collect(self) -> Iterable[Any]:
        with _merge_lock(self._directory, exclusive=False):
            return list(super().collect())


def build_registry(multiproc_dir: str, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    if multiproc_dir:
        registry = CollectorRegistry()
        _ArchiveAwareCollector(registry, multiproc_dir)
    else:
        registry = REGISTRY
    for collector in extra:
        registry.register(collector)
    return registry


def serve(registry: CollectorRegistry, address: str, port: int) -> Any:
    """Starts the metrics listener on its own port and address (never 0.0.0.0 by accident)."""
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server
