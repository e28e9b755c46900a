"""One writer at a time on a run: an exclusive lock held while a command changes a finished run
(an in-place teach or forget replacing it, a report or explanation written into it), so two
commands, or two servers, on one run never mix their files.

The lock is ``flock`` on the folder that holds the run (not a file in the run, which an in-place
change replaces), taken by one process at a time; within a process it is re-entrant. It guards
short commit steps, never the work before them (a transfer, a report's computations).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["run_lock"]

_GUARD = threading.RLock()
_HELD: dict[str, list[int]] = {}  # parent folder -> [fd, depth] while this process holds its lock


def _folder(run: str | Path) -> str:
    return os.path.dirname(os.path.abspath(run)) or os.sep


@contextmanager
def run_lock(run: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of run directory ``run`` (waiting for another process that holds it)."""
    folder = _folder(run)
    with _GUARD:
        held = _HELD.get(folder)
        if held is not None:
            held[1] += 1
        else:
            Path(folder).mkdir(parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            _HELD[folder] = [fd, 1]
        try:
            yield
        finally:
            entry = _HELD[folder]
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[folder]
                fcntl.flock(entry[0], fcntl.LOCK_UN)
                os.close(entry[0])
