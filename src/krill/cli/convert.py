"""Convert datasets (ETO ALFWorld SFT) to krill trajectories."""

from __future__ import annotations

import typer

from krill.errors import KrillError

# the original script's defaults (scripts/convert_eto_trajectories.py)
DEFAULT_RAW = "data/alfworld_raw.json"
DEFAULT_OUT = "data/alfworld_trajectories.json"

app = typer.Typer(help="Convert datasets (ETO ALFWorld SFT) to krill trajectories.", no_args_is_help=True)


@app.command("eto")
def eto(
    src: str | None = typer.Argument(
        None, help=f"ETO alfworld_sft.json (or --input). Default: {DEFAULT_RAW}"
    ),
    dst: str | None = typer.Argument(
        None, help=f"Output trajectories: .json = array (Rust krill), else JSONL. Default: {DEFAULT_OUT}"
    ),
    input_: str | None = typer.Option(None, "--input", help="Same as SRC (the original script's flag)."),
    output: str | None = typer.Option(
        None, "--output", "--out", "-o", help="Same as DST (--output: the original script's flag)."
    ),
    max_n: int = typer.Option(0, "--max", help="Convert at most N episodes (0 = all)."),
) -> None:
    """ETO SFT ALFWorld conversations → trajectories, with a per-category summary."""
    from krill.formats.eto import convert_eto

    src = _one("SRC", src, "--input", input_) or DEFAULT_RAW
    dst = _one("DST", dst, "--output", output) or DEFAULT_OUT
    if max_n < 0:
        raise KrillError(f"--max must be >= 0, got {max_n}")
    s = convert_eto(src, dst, max_n=max_n or None)
    typer.echo(f"Converted {s['count']} trajectories:")
    for cat, n in s["per_category"].items():
        typer.echo(f"  {cat}: {n}")
    typer.echo(f"  Total steps: {s['total_steps']:,}")
    typer.echo(f"  Avg steps/trajectory: {s['avg_steps']:.1f}")
    if s["skipped"]:
        typer.echo(f"  Skipped (no task or no action): {s['skipped']}")
    typer.echo(f"\nSaved to {dst}")


def _one(arg: str, positional: str | None, flag: str, option: str | None) -> str | None:
    if positional and option and positional != option:
        raise KrillError(f"{arg} and {flag} disagree ({positional!r} vs {option!r}); give one")
    return positional or option
