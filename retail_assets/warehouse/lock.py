"""One writer at a time across processes, readers together: a lock beside the DuckDB file.

DuckDB lets one process open a file for writing, or several for reading only, and refuses
any other opening at once ("Could not set lock on file"). With one run in one process that
never mattered. Once steps run in parallel processes (the multiprocess executor, two runs
launched by the daemon at once), a step reading a mart while dbt builds, or two raw loads at
once, would fail. So every opening of the warehouse first takes this lock: shared to read,
exclusive to write (and for the whole dbt build, which opens the file itself). A step waits
for the lock instead of failing.

The lock is `fcntl.flock` on `<warehouse>.lock`, held per process and re-entrant within it:
in one process the steps run one after another and nested openings (dbt's row counts read
while its build still holds the lock) must not wait for themselves.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class _Held:
    fd: int
    exclusive: bool
    depth: int


_held: dict[str, _Held] = {}
_guard = threading.RLock()


def lock_path(warehouse_path: str | Path) -> Path:
    path = Path(warehouse_path).resolve()
    return path.with_name(path.name + ".lock")


@contextmanager
def warehouse_lock(warehouse_path: str | Path, exclusive: bool) -> Iterator[None]:
    """Hold the warehouse's lock (shared or exclusive) for the block, waiting for it."""
    key = str(lock_path(warehouse_path))
    with _guard:
        held = _held.get(key)
        if held is None:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            held = _held[key] = _Held(fd, exclusive, 0)
            upgraded = False
        else:
            upgraded = exclusive and not held.exclusive
            if upgraded:  # a write nested in a read of this process
                fcntl.flock(held.fd, fcntl.LOCK_EX)
                held.exclusive = True
        held.depth += 1
    try:
        yield
    finally:
        with _guard:
            held.depth -= 1
            if held.depth == 0:
                fcntl.flock(held.fd, fcntl.LOCK_UN)
                os.close(held.fd)
                del _held[key]
            elif upgraded:
                fcntl.flock(held.fd, fcntl.LOCK_SH)
                held.exclusive = False
