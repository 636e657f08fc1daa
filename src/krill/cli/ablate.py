"""`krill ablate`: SkillRL's ablation table — variants on the same held-out games, with honest statistics."""

from __future__ import annotations

import typer
from rich.table import Table

from krill.cli.common import announce_run, console, get_config, print_phase
from krill.train.variants import PAPER_VARIANTS, VARIANTS


def ablate(
    out: str = typer.Option(
        "runs/ablate", "--out", "--output", "-o", help="Run directory (re-run to resume)."
    ),
    variants: str = typer.Option(
        "",
        "--variants",
        help=f"Comma-separated variants (default: the paper's {len(PAPER_VARIANTS)}): {', '.join(PAPER_VARIANTS)}; "
        f"beyond the paper: {', '.join(n for n in VARIANTS if n not in PAPER_VARIANTS)}; or all.",
    ),
    seeds: int = typer.Option(
        1, "--seeds", min=1, help="Training seeds per trained variant (mean ± sd reported)."
    ),
) -> None:
    """Run the paper's ablation (Table 3) on one set of held-out games and write RUN/ablation.json, .md, .png.

    Collection, distillation and each seed's SFT run once and are shared by the variants that use
    them; untrained variants are evaluated once. Every variant is evaluated greedily on the same
    `train.eval_episodes` stratified `eval.split` games; the table gives success with 95 % Wilson
    intervals, steps, invalid actions, prompt tokens per step and Fisher's exact test against
    `skillrl`. Re-running the same command resumes: nothing finished is redone."""
    from krill.train.ablate import check_seeds, parse_variants, run_ablation

    names = parse_variants(variants)
    check_seeds(seeds)  # inputs first: a mistake is the only line printed
    cfg = get_config(machine_default=True, announce=False)
    announce_run(cfg)
    console.rule(
        f"krill ablate → {out}  (preset: {cfg.preset or 'none'}; {len(names)} variants, {seeds} seed(s))"
    )
    result = run_ablation(cfg, out, variants=names, seeds=seeds, on_phase=print_phase)
    _print_table(result.data)
    curves = f"  RL curves: {result.files['rl_curves']}" if "rl_curves" in result.files else ""
    console.print(f"table: {result.files['markdown']}  plot: {result.files['plot']}{curves}")
    console.print(f"run directory: {result.run_dir}  (phases' wall time {result.data['wall_time_s']:.0f} s)")


def _print_table(data: dict) -> None:
    """The headline columns (categories are in ablation.md)."""
    from krill.evaluate.ablation_report import ablation_rows

    webshop = data["env"] == "webshop"
    t = Table(title=f"held-out success on {data['episodes']} {data['split']} games [95% Wilson]")
    for col in (
        "variant",
        "success",
        *(["score"] if webshop else []),
        "steps",
        "invalid",
        "tok/step",
        "p vs skillrl",
    ):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for r in ablation_rows(data):
        if r["episodes"] is None:
            t.add_row(r["name"], "not run")
            continue
        p = r["p_vs_reference"]
        t.add_row(
            r["name"],
            f"{100 * r['success_rate']:.1f}% [{100 * r['ci_low']:.0f}–{100 * r['ci_high']:.0f}] ({r['successes']}/{r['episodes']})",
            *([f"{r['mean_score']:.3f}"] if webshop else []),
            f"{r['mean_steps']:.1f}",
            f"{100 * r['invalid_action_rate']:.0f}%",
            f"{r['mean_prompt_tokens']:.0f}",
            "reference" if r["name"] == data["reference"] else "—" if p is None else f"{p:.2g}",
        )
    console.print(t)
