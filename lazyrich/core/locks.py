"""File locks beside files that several processes may write at once (sweep stores, DMFT
checkpoints): the second process waits, saying so, and a lock that cannot be made is refused
at once rather than waited for."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import filelock


@contextlib.contextmanager
def held_lock(lock_path: str, argument: str, waiting: str) -> Iterator[None]:
    """Hold the file lock `lock_path` for the block.

    While another process holds it, print `waiting` (stderr) and wait: the operating system
    releases the lock of a process that dies. A lock file that cannot be created (a folder
    nobody may write in) raises ValueError naming `argument` (e.g. "store='runs.zarr'"):
    filelock reports that failure as a lock held by someone else, which would wait forever.
    """
    try:
        with open(lock_path, "a"):
            pass
    except OSError as error:
        raise ValueError(f"{argument}: cannot create its lock file {lock_path!r}: "
                         f"{error}") from None
    lock = filelock.FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        print(waiting, file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
