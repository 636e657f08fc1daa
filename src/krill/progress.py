"""The one progress-bar helper: a rich Progress with counts, rate, ETA and a free-text status field."""

from __future__ import annotations

import sys
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
    import os

    return bool(os.environ.get("KRILL_PROGRESS"))


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


@contextmanager
def progress_bar(description: str, total: float | None, *, transient: bool = False) -> Iterator[Bar]:
    """`with progress_bar("collect", 64) as bar: ... bar.advance()`; silent when not a terminal."""
    with make_progress(transient=transient) as p:
        yield Bar(p, p.add_task(description, total=total, status=""))
