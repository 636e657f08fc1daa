"""`krill export RUN OUT`: the trained policy, its skill bank and prompt settings as a portable bundle."""

from __future__ import annotations

import typer

from krill.cli.common import console, get_config


def export(
    run: str = typer.Argument(..., help="A `krill train` run, or a `krill rl` / `krill sft` output folder."),
    out: str = typer.Argument(..., help="New folder for the bundle (must not exist)."),
    merge: bool = typer.Option(
        False,
        "--merge",
        help="Also write base + adapter as one model in OUT/merged (servable by vLLM as it is).",
    ),
    base_model_id: str | None = typer.Option(
        None,
        "--base-model-id",
        help="The hub id of the base model, for a run trained on a local model folder "
        "(default: derived from model.policy.model; the embedded SmolLM2 is HuggingFaceTB/SmolLM2-135M-Instruct).",
    ),
) -> None:
    """Bundle a trained agent: the LoRA adapter with the real base model id and a filled model card,
    the final skill bank and the run's prompt settings; `--merge` adds a merged model."""
    from krill.train.export import export_run

    result = export_run(run, out, merge=merge, base_model=base_model_id, cache_dir=get_config().cache_dir)
    console.print(f"wrote {result.out}: adapter (base {result.base_model}), "
                  f"{'bank.json, ' if result.bank else ''}config.yaml, README.md"
                  f"{', merged/' if result.merged else ''}")  # fmt: skip
