"""`krill sft`: cold-start SFT on skill-augmented demonstrations (LoRA by default)."""

from __future__ import annotations

from pathlib import Path

import typer

from krill.cli.common import (
    DEFAULT_SFT,
    RESUME_OPTION,
    STATE,
    announce_run,
    bank_option,
    console,
    err_console,
    get_config,
)

ORIGINAL_NUM_EXAMPLES = 7500  # the original krill's `--num-examples` default (also sft.num_examples)


def sft(
    skill_bank: str = bank_option("Skill bank used to build the prompts."),
    demos: str | None = typer.Option(
        None,
        "--demos",
        help="Chat JSONL demos, or successful trajectories to build them from (default: expert rollouts).",
    ),
    num_examples: int | None = typer.Option(
        None,
        "--num-examples",
        "-n",
        min=1,
        help=f"Demo steps (default: sft.num_examples: {ORIGINAL_NUM_EXAMPLES}, or the preset's on CPU).",
    ),
    out: str = typer.Option(
        DEFAULT_SFT, "--out", "--output", "-o", help="Output folder (adapter, tokenizer, config, demos)."
    ),
    init: str | None = typer.Option(
        None,
        "--init",
        help="Start from this adapter folder. Default: model.policy.adapter, else the base model.",
    ),
    resume: bool = RESUME_OPTION,
) -> None:
    """Cold-start SFT on skill-augmented demonstrations.

    Without a GPU, a run given no preset and no config file uses the `quick` preset's sizes (it says so).
    """
    from krill.formats.banks import load_bank
    from krill.formats.trajectories import TRAJECTORIES_HINT
    from krill.io import require_file
    from krill.train.sft import run_sft

    cfg = get_config(machine_default=True, announce=False)
    if demos is not None:  # a missing input fails before the run says anything
        require_file(demos, TRAJECTORIES_HINT)
    # chat demos carry their prompts; trajectories (e.g. converted ETO data) and expert rollouts need the bank
    need_bank = cfg.agent.use_skills and (demos is None or Path(skill_bank).exists())
    bank = load_bank(skill_bank) if need_bank else None
    announce_run(cfg)
    err_console.print(f"[dim]{demo_count_note(cfg, num_examples, STATE.config_file)}[/dim]", highlight=False)
    result = run_sft(cfg, bank, out, demos_path=demos, num_examples=num_examples, init=init, resume=resume)
    console.print(
        f"SFT: {result.examples} demos, {result.steps} steps, loss {result.initial_loss:.3f} → "
        f"{result.final_loss:.3f} in {result.wall_s:.0f}s"
    )
    console.print(f"wrote {result.adapter_dir} (demos: {result.demos_path})")


def demo_count_note(cfg, num_examples: int | None, config_file: str | None = None) -> str:
    """Where the number of demo steps comes from: the flag, or sft.num_examples and its source."""
    if num_examples:
        return f"demo steps: {num_examples} (--num-examples)"
    n = cfg.sft.num_examples
    source = f"preset: {cfg.preset or 'none'}, config file: {config_file or 'none'}"
    hint = "" if n == ORIGINAL_NUM_EXAMPLES else f"; the original default is {ORIGINAL_NUM_EXAMPLES}"
    return f"demo steps: sft.num_examples = {n} ({source}{hint}; --num-examples N to change)"
