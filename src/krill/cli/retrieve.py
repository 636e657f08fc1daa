"""`krill retrieve`: show the skills retrieved for a task, with their cosine scores."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.table import Table

from krill.cli.common import DEFAULT_BANK, console, get_config


def retrieve(
    task: str = typer.Argument(
        ..., help='Task description, e.g. "heat some potato and put it in the fridge".'
    ),
    bank: str = typer.Option(DEFAULT_BANK, "--bank", "--skill-bank", "-b", help="Skill bank file."),
    category: str | None = typer.Option(
        None, "--category", help="Task category (default: inferred from the task)."
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", help="K task-specific skills (default: skill_retrieval.top_k)."
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Cosine δ (default: skill_retrieval.threshold; unset: the embedder's calibrated δ).",
    ),
    template: bool = typer.Option(
        False, "--template", help="Official template mode: all skills of the category."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the general skills, top-K task skills (with scores) and mistakes the agent would see."""
    from krill.formats.banks import load_bank
    from krill.io import to_json
    from krill.skills.retrieval import retrieve as do_retrieve

    overrides = []
    if top_k is not None:
        overrides.append(f"skill_retrieval.top_k={top_k}")
    if threshold is not None:
        overrides.append(f"skill_retrieval.threshold={threshold}")
    if template:
        overrides.append("skill_retrieval.mode=template")
    cfg = get_config(overrides)
    result = do_retrieve(load_bank(bank), task, category=category, cfg=cfg)
    if as_json:
        sys.stdout.write(to_json(retrieved_to_dict(task, result)))
        return
    print_retrieved(task, result)


def retrieved_to_dict(task: str, r) -> dict:
    def skill(s, score=None):
        d = {"id": s.id, "name": s.name, "category": s.category, "principle": s.principle,
             "when_to_apply": s.when_to_apply}  # fmt: skip
        return d if score is None else {**d, "score": round(score, 6)}

    mistakes = [m.model_dump(mode="json", exclude={"provenance"}) for m in r.mistakes]
    for m, score in zip(mistakes, r.mistake_scores, strict=False):
        m["score"] = round(score, 6)
    return {
        "task": task,
        "category": r.category,
        "mode": r.mode,
        "threshold": r.threshold,
        "general": [skill(s) for s in r.general],
        "specific": [skill(s, x) for s, x in r.specific],
        "left_out": [{**skill(s, x), "reason": why} for s, x, why in r.left_out],
        "mistakes": mistakes,
    }


def print_retrieved(task: str, r) -> None:
    where = r.category or "all categories"
    delta = f", δ={r.threshold:g}" if r.threshold is not None else ""
    table = Table(title=f"{escape(task)}  →  {where} ({r.mode}{delta})", show_lines=False)
    for col in ("tier", "score", "id", "name", "principle"):
        table.add_column(col, justify="right" if col == "score" else "left", overflow="fold")
    for s in r.general:
        table.add_row("general", "—", s.short_id, escape(s.name), escape(s.principle))
    for s, score in r.specific:
        table.add_row(escape(s.category), f"{score:.3f}", s.short_id, escape(s.name), escape(s.principle))
    scores = [f"{x:.3f}" for x in r.mistake_scores] or [""] * len(r.mistakes)
    for m, score in zip(r.mistakes, scores, strict=True):
        table.add_row("mistake", score, m.mistake_id[:8], escape(m.description), escape(m.how_to_avoid))
    console.print(table)
    below = [(s, x) for s, x, why in r.left_out if why == "below threshold"]
    if not r.specific and below:
        best, score = below[0]
        console.print(
            f"no {escape(where)} skill above δ={r.threshold:g}: the best is {escape(best.name)!r} at {score:.3f}; "
            f"lower δ with --threshold {max(score - 0.01, -1):.2f} (or skill_retrieval.threshold)"
        )
    elif not r.specific:
        console.print(f"[dim]the bank has no task-specific skill for {escape(where)}[/dim]")
