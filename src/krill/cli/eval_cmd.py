"""`krill eval`: per-category success with 95% Wilson intervals; `--compare` puts results side by side."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from krill.cli.common import console, err_console, get_config, note_mock_once
from krill.errors import KrillError
from krill.train.runs import run_setup


def eval_(
    split: str | None = typer.Option(
        None, "--split", help="valid_unseen | valid_seen | test | train. Default: eval.split (valid_unseen)."
    ),
    policy: str = typer.Option("local", "--policy", help="local | openai | expert | random"),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Model path/id, an adapter folder, or a run folder (`krill train`/`rl`/`sft --out`): a run is "
        "evaluated with its own recorded settings, adapter and final bank (flags and --set still win). "
        "Default: model.policy.model.",
    ),
    skill_bank: str | None = typer.Option(
        None,
        "--skill-bank",
        help="Bank to retrieve skills from. Default: a run's final bank with --model RUN, else none.",
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
        from krill.evaluate.eval import provenance_differences

        results = [load_eval(p) for p in files]
        for line in provenance_differences(results):
            err_console.print(f"warning: the results were made differently: {line}")
        _print_comparison(run_labels(files), compare_results([r["results"] for r in results]))
        _print_fisher(run_labels(files), results)
        return
    note_mock_once()
    overrides = []
    if seed is not None:
        overrides.append(f"eval.seed={seed}")
    if policy == "openai":  # the policy's backend, seen by the config check (an api_base is then used)
        overrides.append("model.policy.backend=openai")
    run = run_setup(Path(model)) if model else None
    if model:
        overrides.append(f"model.policy.adapter={run.adapter}" if run else _model_override(model))
    cfg = get_config(overrides, machine_default=policy in ("local", "openai"),
                     config_file=run.config if run else None)  # fmt: skip
    skill_bank = skill_bank or (str(run.bank) if run and run.bank else None)
    if run:
        err_console.print(f"evaluating run {model}: settings from {run.config}, adapter {run.adapter}, "
                          f"bank {'none (--no-skills)' if no_skills else skill_bank or 'none'}")  # fmt: skip
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


def run_labels(files: list[str]) -> list[str]:
    """Column names: each file's stem, with as many parent folders as it takes to tell them apart
    (two runs' `eval/after.json` → `quick/eval/after`, `quick2/eval/after`)."""
    parts = [Path(f).with_suffix("").parts for f in files]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(f) for f in files]


def _print_fisher(labels: list[str], results: list[dict]) -> None:
    """Fisher's exact test of the last result against the first, on all episodes, both ways named."""
    from krill.evaluate.stats import fisher_one_sided, fisher_two_sided

    a, b = results[0]["results"].get("all"), results[-1]["results"].get("all")
    if not a or not b:
        return
    counts = (a["successes"], a["episodes"], b["successes"], b["episodes"])
    console.print(
        f"{labels[-1]} {counts[2]}/{counts[3]} vs {labels[0]} {counts[0]}/{counts[1]}: Fisher's exact test "
        f"p = {fisher_two_sided(*counts):.3g} (two-sided), p = {fisher_one_sided(*counts):.3g} "
        f"(one-sided, {labels[-1]} better)"
    )


def _print_comparison(labels: list[str], rows) -> None:
    if len(labels) < 2:
        raise KrillError("--compare needs at least two eval files")
    t = Table(title="comparison (success %, 95% CI)")
    t.add_column("category")
    for label in labels:
        t.add_column(label, justify="right")
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
