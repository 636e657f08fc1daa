"""`krill eval`: per-category success with 95% Wilson intervals; `--compare` puts results side by side."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from krill.cli.common import console, get_config, note_mock_once
from krill.errors import KrillError


def eval_(
    split: str | None = typer.Option(
        None, "--split", help="valid_unseen | valid_seen | test | train. Default: eval.split (valid_unseen)."
    ),
    policy: str = typer.Option("local", "--policy", help="local | openai | expert | random"),
    model: str | None = typer.Option(
        None, "--model", help="Model path/id, or a run's sft/rl dir (adapter). Default: model.policy.model."
    ),
    skill_bank: str | None = typer.Option(
        None, "--skill-bank", help="Bank to retrieve skills from. Default: none (no skills in the prompt)."
    ),
    no_skills: bool = typer.Option(False, "--no-skills", help="Ablation: no retrieved skills in the prompt."),
    episodes: int | None = typer.Option(
        None,
        "--episodes",
        "-n",
        help="N episodes stratified by category. Default: eval.episodes (unset: the whole split).",
    ),
    all_: bool = typer.Option(False, "--all", help="The whole split (default when --episodes is not given)."),
    out: str = typer.Option("runs/eval/eval.json", "--out", "--output", "-o", help="Result JSON."),
    seed: int | None = typer.Option(
        None, "--seed", help="Task sample and sampling seed. Default: eval.seed (0)."
    ),
    compare: bool = typer.Option(False, "--compare", help="Compare eval JSON files given as arguments."),
    files: list[str] | None = typer.Argument(None, help="With --compare: eval JSON files (A.json B.json …)."),
) -> None:
    """Evaluate a policy on a split, or compare earlier results (`--compare A.json B.json`)."""
    from krill.evaluate.eval import evaluate, load_eval
    from krill.evaluate.stats import compare as compare_results

    if compare or files:
        files = list(files or [])
        if len(files) < 2:
            raise KrillError("--compare needs at least two eval files")
        results = [load_eval(p) for p in files]
        _print_comparison(files, compare_results([r["results"] for r in results]))
        return
    note_mock_once()
    overrides = []
    if seed is not None:
        overrides.append(f"eval.seed={seed}")
    if policy == "openai":  # the policy's backend, seen by the config check (an api_base is then used)
        overrides.append("model.policy.backend=openai")
    if model:
        overrides.append(_model_override(model))
    cfg = get_config(overrides)
    bank = None
    if skill_bank and not no_skills:
        from krill.formats.banks import load_bank

        bank = load_bank(skill_bank)
    n = None if all_ else (episodes if episodes is not None else cfg.eval.episodes)
    result = evaluate(
        cfg, policy=policy, bank=bank, out=out, split=split, episodes=n, use_skills=not no_skills
    )
    _print_result(result.to_dict())
    console.print(f"wrote {out} (trajectories: {result.trajectories_path})")


def _model_override(model: str) -> str:
    """--model may name a model, or a krill sft/rl output directory holding a LoRA adapter."""
    p = Path(model)
    if (p / "adapter_config.json").exists():
        return f"model.policy.adapter={p}"
    if (p / "adapter" / "adapter_config.json").exists():
        return f"model.policy.adapter={p / 'adapter'}"
    return f"model.policy.model={model}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _print_result(data: dict) -> None:
    t = Table(title=f"{data['policy']} on {data['env']}/{data['split']}")
    for col in (
        "category",
        "n",
        "success %",
        "95% CI",
        "score",
        "steps",
        "invalid %",
        "prompt tok",
        "skills/step",
    ):
        t.add_column(col, justify="right" if col != "category" else "left")
    for cat, r in data["results"].items():
        t.add_row(
            cat,
            str(r["episodes"]),
            _pct(r["success_rate"]),
            f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]",
            f"{r['mean_score']:.3f}",
            f"{r['mean_steps']:.1f}",
            _pct(r["invalid_action_rate"]),
            f"{r['mean_prompt_tokens']:.0f}",
            f"{r['skills_per_step']:.1f}",
        )
    console.print(t)


def _print_comparison(files: list[str], rows) -> None:
    if len(files) < 2:
        raise KrillError("--compare needs at least two eval files")
    t = Table(title="comparison (success %, 95% CI)")
    t.add_column("category")
    for f in files:
        t.add_column(Path(f).stem, justify="right")
    t.add_column("diff (last − first)", justify="right")
    t.add_column("CIs overlap", justify="center")
    for row in rows:
        cells = [
            "—" if r is None else f"{_pct(r)} [{_pct(i[0])}, {_pct(i[1])}]"
            for r, i in zip(row.rates, row.intervals, strict=True)
        ]
        diff = "—" if row.diff is None else f"{100 * row.diff:+.1f}"
        overlap = "—" if row.overlap is None else ("yes" if row.overlap else "no")
        t.add_row(row.category, *cells, diff, overlap)
    console.print(t)
