"""`krill sft`: cold-start SFT on skill-augmented demonstrations (LoRA by default)."""

from __future__ import annotations

from pathlib import Path

import typer

from krill.cli.common import console, get_config


def sft(
    skill_bank: str = typer.Option(
        "data/skill_bank.json", "--skill-bank", "-b", help="Skill bank used to build the prompts."
    ),
    demos: str | None = typer.Option(
        None,
        "--demos",
        help="Chat JSONL demos, or successful trajectories to build them from (default: expert rollouts).",
    ),
    num_examples: int | None = typer.Option(
        None, "--num-examples", "-n", help="Demo steps (default: sft.num_examples)."
    ),
    out: str = typer.Option(
        "runs/sft", "--out", "--output", "-o", help="Output folder (adapter, tokenizer, config, demos)."
    ),
    init: str | None = typer.Option(None, "--init", help="Start from this adapter folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
    preset: str | None = typer.Option(None, "--preset", help="tiny | quick | paper"),
) -> None:
    """Cold-start SFT on skill-augmented demonstrations."""
    from krill.formats.banks import load_bank
    from krill.train.sft import run_sft

    cfg = get_config(preset=preset)
    # chat demos carry their prompts; trajectories (e.g. converted ETO data) and expert rollouts need the bank
    need_bank = cfg.agent.use_skills and (demos is None or Path(skill_bank).exists())
    bank = load_bank(skill_bank) if need_bank else None
    result = run_sft(cfg, bank, out, demos_path=demos, num_examples=num_examples, init=init, resume=resume)
    console.print(
        f"SFT: {result.examples} demos, {result.steps} steps, loss {result.initial_loss:.3f} → "
        f"{result.final_loss:.3f} in {result.wall_s:.0f}s"
    )
    console.print(f"wrote {result.adapter_dir} (demos: {result.demos_path})")
