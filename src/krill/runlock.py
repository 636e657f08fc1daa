"""One writer per run: an OS file lock on the folder (or file) a verb writes.

Two `krill train --out same` started seconds apart used to both collect into the same trajectory
file and leave a run no resume could continue. `run_lock(path)` takes an exclusive `flock` on
`<folder>/.krill.lock` (for a single-file output, `<parent>/.<name>.lock`) without waiting: a second
writer gets a one-line error naming the process that holds it. The kernel releases the lock when its
process dies, so a killed run never leaves a stale lock behind; the file itself only records the
holder's pid and verb for that message. Re-entrant within a process (a verb's phases write inside
the folder their verb already holds); under `accelerate launch` only rank 0 takes it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from krill.errors import KrillError

_HELD: dict[Path, int] = {}  # lock file → depth, for the locks this process holds


def lock_path(target: str | Path) -> Path:
    """The lock file of a run folder, or of a single-file output (an existing file or a name with a suffix)."""
    target = Path(target)
    if target.is_dir() or (not target.exists() and not target.suffix):
        return target / ".krill.lock"
    return target.parent / f".{target.name}.lock"


@contextmanager
def run_lock(target: str | Path, verb: str) -> Iterator[None]:
    """Hold the exclusive writer's lock of `target` for the duration (see the module docstring)."""
    path = lock_path(target).resolve()
    if os.environ.get("RANK", "0") != "0":  # `accelerate launch`: the ranks of one run write together
        yield
        return
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise KrillError(
            f"another krill process ({holder}) is writing here; wait for it to finish or use another --out",
            path=target,
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, krill {verb}\n".encode())
        _HELD[path] = 1
        yield
    finally:
        _HELD.pop(path, None)
        os.close(fd)  # closing the descriptor releases the lock


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise KrillError(f"cannot take the run's lock ({exc.strerror or exc})", path=path) from None


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"
