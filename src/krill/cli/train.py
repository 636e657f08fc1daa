"""`krill train`: collect → distill → SFT → RL with evolution → eval, into one resumable run directory."""

from __future__ import annotations

import typer
from rich.table import Table

from krill.cli.common import announce_run, console, get_config, print_phase


def train(
    out: str = typer.Option(
        "runs/train", "--out", "--output", "-o", help="Run directory (re-run to resume)."
    ),
) -> None:
    """The whole SkillRL loop in one run directory: collect → distill → eval → SFT → GRPO + evolution → eval.

    Re-running the same command resumes: completed phases are skipped."""
    from krill.train.pipeline import run_pipeline

    cfg = get_config(machine_default=True, announce=False)
    announce_run(cfg)
    console.rule(f"krill train → {out}  (preset: {cfg.preset or 'none'})")

    result = run_pipeline(cfg, out, on_phase=print_phase)
    _print_summary(result)


def _print_summary(result) -> None:
    t = Table(title="held-out success [95% Wilson interval]: untrained vs trained policy")
    for col in ("category", "untrained", "trained", "invalid actions (untrained → trained)"):
        t.add_column(col, justify="left" if col == "category" else "right")
    before = (result.before or {}).get("results", {})
    after = (result.after or {}).get("results", {})
    cats = sorted((set(before) | set(after)) - {"all"}) + ["all"]
    for cat in cats:
        b, a = before.get(cat), after.get(cat)
        t.add_row(cat, _success(b), _success(a), f"{_invalid(b)} → {_invalid(a)}")
    console.print(t)
    sizes = result.bank_sizes
    console.print(
        f"bank: {sizes['general']} general + {sizes['task_specific']} task-specific skills, "
        f"{sizes['mistakes']} common mistakes"
    )
    console.print(f"run directory: {result.run_dir}  (wall time {result.wall_time_s:.0f} s)")
    if "all" in before and "all" in after:
        from krill.evaluate.stats import difference_verdict

        console.print(difference_verdict(before["all"], after["all"]))


def _success(r: dict | None) -> str:
    if r is None:
        return "—"
    return (
        f"{100 * r['success_rate']:.1f}% ({r['successes']}/{r['episodes']}) "
        f"[{100 * r['ci_low']:.0f}–{100 * r['ci_high']:.0f}%]"
    )


def _invalid(r: dict | None) -> str:
    return (
        "—" if r is None or r.get("invalid_action_rate") is None else f"{100 * r['invalid_action_rate']:.0f}%"
    )
