"""`krill collect`: roll out a policy in an environment and write trajectories (resumable)."""

from __future__ import annotations

import typer
from rich.table import Table

from krill.cli.common import STATE, console, get_config


def collect(
    episodes: int = typer.Option(64, "--episodes", "-n", help="Episodes to run."),
    policy: str = typer.Option(
        "expert",
        "--policy",
        help="expert (the env's planner: successes for distillation/SFT) | random | local (an HF model, "
        "default the embedded SmolLM2) | openai (any OpenAI-compatible server).",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Policy model: HF path/id or 'tiny' (local), name (openai). Default: model.policy.model.",
    ),
    skill_bank: str | None = typer.Option(
        None, "--skill-bank", help="Bank to retrieve skills from (LLM policies). Default: none (no skills)."
    ),
    no_skills: bool = typer.Option(False, "--no-skills", help="Ablation: no skills in the prompt."),
    split: str = typer.Option(
        "train", "--split", help="train | valid_seen | valid_unseen (WebShop: train | test)."
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        "--output",
        "-o",
        help="Output: .json = array, else JSONL. Default: data/trajectories.json.",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Keep finished episodes in the output; run the rest."
    ),
    seed: int = typer.Option(0, "--seed", help="Task order and sampling seed (resume with the same one)."),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Step cap per episode (default: the env's)."
    ),
) -> None:
    """Roll out a policy and write trajectories; successes and failures are both kept.

    The default policy is `expert`: like the original krill's collect it produces the successful
    demonstrations that `distill` and `sft` learn from, in minutes on CPU. `--policy local` runs the
    LLM agent with retrieved skills (`--skill-bank`).
    """
    from krill.agent.collect import DEFAULT_OUT, CollectOptions
    from krill.agent.collect import collect as run_collect
    from krill.progress import progress_bar

    overrides = []
    if model:
        overrides.append(f"model.policy.model={model}")
    if no_skills:
        overrides.append("agent.use_skills=false")
    if policy == "openai":  # the policy's backend, seen by the config check (an api_base is then used)
        overrides.append("model.policy.backend=openai")
    # LLM policies on a CPU-only machine get the `quick` sizes (short prompts, bare actions).
    cfg = get_config(overrides, machine_default=policy in ("local", "openai"))
    opts = CollectOptions(
        episodes=episodes, policy=policy, split=split, out=out or DEFAULT_OUT, resume=resume, seed=seed,
        skill_bank=skill_bank, max_steps=max_steps,
    )  # fmt: skip
    with progress_bar(f"collect {cfg.env.name} ({policy})", episodes) as bar:
        result = run_collect(cfg, opts, progress=bar)
    print_summary(result, cfg.env.name)
    if STATE.debug:
        console.print(f"[dim]config: env={cfg.env.name} split={split} seed={seed}[/dim]")


def print_summary(result, env_name: str) -> None:
    from krill.agent.collect import summarize

    table = Table(title=f"{env_name} · {result.policy} · {len(result.trajectories)} episodes")
    for col in ("category", "episodes", "success", "mean steps", "invalid"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for row in summarize(result.trajectories):
        style = "bold" if row["category"] == "all" else None
        table.add_row(
            row["category"], str(row["episodes"]), f"{row['success_rate']:.1%}", f"{row['mean_steps']:.1f}",
            f"{row['invalid_rate']:.1%}", style=style,
        )  # fmt: skip
    console.print(table)
    extra = f", {result.resumed} kept from before" if result.resumed else ""
    skills = f"; skills retrieved from a bank of {result.skills}" if result.skills else ""
    console.print(
        f"wrote {len(result.trajectories)} trajectories ({result.ran} new{extra}) to {result.out}{skills}"
    )
