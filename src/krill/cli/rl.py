"""`krill rl`: GRPO on the skill-augmented agent (with skill evolution when `krill train` runs it)."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from krill.cli.common import (
    DEFAULT_RL,
    DEFAULT_SFT,
    RESUME_OPTION,
    announce_run,
    bank_option,
    console,
    err_console,
    get_config,
)


def rl(
    skill_bank: str = bank_option("Skill bank retrieved from during rollouts."),
    init: str | None = typer.Option(
        None,
        "--init",
        help="Start from this SFT adapter folder (default: runs/sft when `krill sft` left one for "
        "the same model; 'none' = the base model).",
    ),
    out: str = typer.Option(
        DEFAULT_RL, "--out", "--output", "-o", help="Run folder (metrics, tb, checkpoints, adapter)."
    ),
    resume: bool = RESUME_OPTION,
    iterations: int | None = typer.Option(
        None, "--iterations", help="RL iterations (default: rl.iterations)."
    ),
) -> None:
    """GRPO with the skill-augmented agent: rollouts in groups, clipped surrogate + KL, LoRA updates.

    Every evolution.validation_interval iterations the bank evolves from validation failures
    (OUT/banks/cycle_K.json, OUT/evolution.jsonl); --set evolution.enabled=false turns it off.

    Without a GPU, a run given no preset and no config file uses the `quick` preset's sizes (it says so).
    """
    from krill.formats.banks import load_bank
    from krill.train.evolution import evolve_hook_for
    from krill.train.rl import run_rl

    overrides = [f"rl.iterations={iterations}"] if iterations else []
    cfg = get_config(overrides, machine_default=True, announce=False)
    bank = load_bank(skill_bank)  # a missing bank fails before the run says anything
    announce_run(cfg)
    start = _starting_point(cfg, init)
    hook = evolve_hook_for(cfg, out)
    result = run_rl(cfg, bank, out, init=start, resume=resume, evolve_hook=hook)
    last = result.metrics[-1] if result.metrics else {}
    if last:
        ran = len(result.metrics)
        informative = sum(m.get("groups/informative", 0) for m in result.metrics)
        groups = sum(m.get("groups/total", 0) for m in result.metrics)
        console.print(
            f"RL: iteration {result.iterations}: reward {last.get('rollout/reward', 0):.2f}, "
            f"success {last.get('charts/success_rate', 0):.2f}, kl {last.get('losses/kl', 0):.4f}; "
            f"{result.updates} of {ran} iterations updated the weights"
            + (" (the others: every group's rollouts had the same reward)" if result.updates < ran else "")
            + (f"; {informative:.0f} of {groups:.0f} groups carried an advantage" if groups else "")
        )
    console.print(
        f"wrote {result.out_dir} (adapter: {result.adapter_dir}, bank: {result.bank_path}, "
        f"metrics: {result.out_dir / 'metrics.jsonl'}, rollouts: {result.out_dir / 'rollouts'})"
    )


def _starting_point(cfg, init: str | None) -> str | None:
    """--init as given; else the walkthrough's chain sft → rl: runs/sft when it was trained on this model."""
    if init is not None:
        return None if init.lower() == "none" else init
    if not (Path(DEFAULT_SFT) / "adapter_config.json").exists() or cfg.model.policy.backend != "local":
        return None
    saved = _saved_policy_model(Path(DEFAULT_SFT) / "config.yaml")
    if saved != cfg.model.policy.model:
        err_console.print(
            f"[dim]{DEFAULT_SFT} was trained on {saved or 'an unknown model'}, not "
            f"{cfg.model.policy.model}: starting from the base model (--init to choose)[/dim]",
            highlight=False,
        )
        return None
    err_console.print(
        f"[dim]starting from the SFT adapter in {DEFAULT_SFT} (--init DIR to choose, --init none for "
        "the base model)[/dim]",
        highlight=False,
    )
    return DEFAULT_SFT


def _saved_policy_model(path: Path) -> str | None:
    try:
        saved = yaml.safe_load(path.read_text("utf-8")) or {}
        return saved["model"]["policy"]["model"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
