"""`krill report RUN`: one self-contained HTML page plus PNG figures for a run directory."""

from __future__ import annotations

import typer

from krill.cli.common import console


def report(
    run: str = typer.Argument(..., help="Run directory of `krill train`, or a `krill rl` output folder."),
    out: str | None = typer.Option(None, "--out", "--output", "-o", help="Output dir (default RUN/report)."),
) -> None:
    """Build RUN/report/index.html: learning curves, KL/loss, bank growth, eval bars, searchable bank."""
    from krill.evaluate.report import build_report

    path = build_report(run, out)
    console.print(f"wrote {path}")
