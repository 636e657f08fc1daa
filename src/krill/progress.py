"""The one progress helper: a rich Progress with counts, rate, ETA and a free-text status field on a
terminal; elsewhere (nohup, Slurm, a redirected stderr) plain lines at most every
`KRILL_PROGRESS_INTERVAL` seconds (default 30) and at the end of a task that took longer, so a log
file shows how a long phase goes (`eval: 24/60 (40%), 0.21/s, ETA 2m51s, succ 0.12`)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)


def make_progress(*, transient: bool = False) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=_console,
        transient=transient,
        disable=not sys.stderr.isatty() and not _force(),
    )


def _force() -> bool:
    return bool(os.environ.get("KRILL_PROGRESS"))


def _interactive() -> bool:
    return sys.stderr.isatty() or _force()


class Bar:
    """A handle on one task of a progress display: `advance()`, `status("succ 0.42")`."""

    def __init__(self, progress: Progress, task_id):
        self._p, self._t = progress, task_id

    def advance(self, n: float = 1) -> None:
        self._p.advance(self._t, n)

    def status(self, text: str) -> None:
        self._p.update(self._t, status=text)

    def total(self, total: float | None) -> None:
        self._p.update(self._t, total=total)


class PlainBar:
    """`Bar`'s interface as plain stderr lines: at most one every `interval` seconds, and a last one."""

    def __init__(self, description: str, total: float | None, interval: float):
        self.description, self._total, self.interval = description, total, interval
        self.done, self._status, self.start = 0.0, "", time.monotonic()
        self._last = self.start

    def advance(self, n: float = 1) -> None:
        self.done += n
        if time.monotonic() - self._last >= self.interval:
            self.line()

    def status(self, text: str) -> None:
        self._status = text

    def total(self, total: float | None) -> None:
        self._total = total

    def line(self) -> None:
        self._last = now = time.monotonic()
        rate = self.done / max(now - self.start, 1e-9)
        parts = [f"{self.description}: {self.done:g}" + (f"/{self._total:g}" if self._total else "")]
        if self._total:
            parts[0] += f" ({100 * self.done / self._total:.0f}%)"
        parts.append(f"{rate:.2f}/s")
        if self._total and rate > 0 and self.done < self._total:
            parts.append(f"ETA {_duration((self._total - self.done) / rate)}")
        if self._status:
            parts.append(self._status)
        print(", ".join(parts), file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


@contextmanager
def progress_bar(
    description: str, total: float | None, *, transient: bool = False
) -> Iterator[Bar | PlainBar]:
    """`with progress_bar("collect", 64) as bar: ... bar.advance()`; plain periodic lines when not a terminal."""
    if not _interactive():
        bar = PlainBar(description, total, float(os.environ.get("KRILL_PROGRESS_INTERVAL", "30")))
        yield bar
        if bar.done and time.monotonic() - bar.start >= bar.interval:  # a long task says it ended
            bar.line()
        return
    with make_progress(transient=transient) as p:
        yield Bar(p, p.add_task(description, total=total, status=""))
