"""`krill rl`: GRPO on the skill-augmented agent (with skill evolution when `krill train` runs it)."""

from __future__ import annotations

import typer

from krill.cli.common import console, get_config


def rl(
    skill_bank: str = typer.Option(
        "data/skill_bank.json", "--skill-bank", "-b", help="Skill bank retrieved from during rollouts."
    ),
    init: str | None = typer.Option(
        None, "--init", help="Start from this SFT adapter folder (e.g. runs/sft)."
    ),
    out: str = typer.Option(
        "runs/rl", "--out", "--output", "-o", help="Run folder (metrics, tb, checkpoints, adapter)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
    iterations: int | None = typer.Option(
        None, "--iterations", help="RL iterations (default: rl.iterations)."
    ),
    preset: str | None = typer.Option(None, "--preset", help="tiny | quick | paper"),
) -> None:
    """GRPO with the skill-augmented agent: rollouts in groups, clipped surrogate + KL, LoRA updates."""
    from krill.formats.banks import load_bank
    from krill.train.rl import run_rl

    cfg = get_config([f"rl.iterations={iterations}"] if iterations else None, preset=preset)
    result = run_rl(cfg, load_bank(skill_bank), out, init=init, resume=resume)
    last = result.metrics[-1] if result.metrics else {}
    if last:
        console.print(
            f"RL: iteration {result.iterations}: reward {last.get('rollout/reward', 0):.2f}, "
            f"success {last.get('charts/success_rate', 0):.2f}, kl {last.get('losses/kl', 0):.4f}"
        )
    console.print(
        f"wrote {result.out_dir} (adapter: {result.adapter_dir}, metrics: {result.out_dir / 'metrics.jsonl'})"
    )
