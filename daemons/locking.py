"""Exclusive locks on files, held across processes for the length of a `with` block.

One helper, so that every lock in the service is taken, waited for and released the same way.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on the file at `path` for the block, waiting while another process has it.

    The file and its parent folders are created as needed, and the file is left in place afterwards:
    deleting it would let a process still waiting on the old file and a newcomer that creates a new
    one hold the lock at the same time. The lock is advisory (flock: it excludes only processes that
    lock the same file) and is released when the file is closed, on leaving the block or when the
    process dies.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
