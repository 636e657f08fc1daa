"""`krill distill`: trajectories → a small, deduplicated two-tier skill bank (analytic or LLM teacher)."""

from __future__ import annotations

import typer
from rich.table import Table

from krill.cli.common import DEFAULT_BANK, DEFAULT_TRAJECTORIES, console, err_console, get_config


def distill(
    trajectories: str = typer.Option(
        DEFAULT_TRAJECTORIES, "--trajectories", "-t", help="Trajectories (JSONL or JSON array)."
    ),
    out: str = typer.Option(DEFAULT_BANK, "--out", "--output", "-o", help="Skill bank to write."),
    teacher: str | None = typer.Option(
        None, "--teacher", help="analytic (offline, default) | llm (model.teacher endpoint). Default: config."
    ),
) -> None:
    """Distill trajectories into a two-tier skill bank: successes → patterns, failures → mistakes to avoid."""
    from krill.skills.distill import distill_file, work_dir_for

    # `--teacher llm` is the teacher's backend: the config check must see it (an api_base is then used)
    cfg = get_config([f"model.teacher.backend={teacher}"] if teacher == "llm" else [])
    bank, report = distill_file(trajectories, out, cfg, teacher=teacher)
    for w in report.warnings[:10]:
        err_console.print(f"[yellow]warning:[/yellow] {w}", markup=True, highlight=False)
    table = Table(title="krill distill", show_header=False, box=None)
    for label, value in report.rows():
        table.add_row(label, value)
    console.print(table)
    extra = f" (teacher cache: {work_dir_for(out)})" if report.teacher == "llm" else ""
    console.print(f"Wrote {len(bank)} skills and {len(bank.common_mistakes)} common mistakes to {out}{extra}")
