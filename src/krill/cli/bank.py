"""Skill bank tools: convert, stats, merge, dedup, diff, export, compression."""

from __future__ import annotations

import json

import typer

from krill.cli.common import console, get_config
from krill.errors import KrillError
from krill.formats.banks import FORMATS, load_bank, save_bank

app = typer.Typer(
    help="Skill bank tools: convert, stats, merge, dedup, diff, export, compression.", no_args_is_help=True
)


def _fmt(value: str, choices: tuple[str, ...], flag: str) -> str:
    if value not in choices:
        raise KrillError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")
    return value


@app.command("convert")
def convert(
    src: str = typer.Argument(..., help="Input bank (format auto-detected)."),
    dst: str = typer.Argument(..., help="Output bank file."),
    to: str = typer.Option("krill", "--to", help="krill (Rust-compatible) | official (SkillRL)."),
) -> None:
    """Convert a bank between the krill/Rust and the official SkillRL JSON formats."""
    get_config()  # registers user categories (env.categories) before a bank is read
    bank = load_bank(src)
    save_bank(bank, dst, fmt=_fmt(to, FORMATS, "--to"))
    typer.echo(f"wrote {len(bank)} skills ({to} format) to {dst}")


@app.command("stats")
def stats(
    bank: str = typer.Argument(..., help="Skill bank file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Counts per tier and category, embeddings, evolution history, duplicate names."""
    get_config()  # registers user categories (env.categories) before a bank is read
    from krill.formats.bank_tools import bank_stats

    _print_dict(bank_stats(load_bank(bank)), as_json, title=bank)


@app.command("merge")
def merge(
    a: str = typer.Argument(..., help="First bank."),
    b: str = typer.Argument(..., help="Second bank (wins for skills with the same id)."),
    out: str = typer.Option(..., "--out", "-o", help="Merged bank file."),
) -> None:
    """Union of two banks by skill id; history and common mistakes are merged too."""
    get_config()  # registers user categories (env.categories) before a bank is read
    from krill.formats.bank_tools import merge_banks

    merged, counts = merge_banks(load_bank(a), load_bank(b))
    save_bank(merged, out)
    typer.echo(
        f"{len(merged)} skills -> {out} (added {counts['added']}, replaced {counts['replaced']}, "
        f"identical {counts['identical']}, mistakes added {counts['mistakes_added']})"
    )


@app.command("diff")
def diff(
    a: str = typer.Argument(..., help="Old bank."),
    b: str = typer.Argument(..., help="New bank."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Skills added, removed and changed (by id) from A to B, e.g. what evolution added."""
    get_config()  # registers user categories (env.categories) before a bank is read
    from krill.formats.bank_tools import diff_banks

    d = diff_banks(load_bank(a), load_bank(b))
    if as_json:
        typer.echo(json.dumps(d.to_dict(), indent=2, ensure_ascii=False))
        return
    for s in d.added:
        typer.echo(f"+ [{s.short_id}] {s.label}")
    for s in d.removed:
        typer.echo(f"- [{s.short_id}] {s.label}")
    for _, s, fields in d.changed:
        typer.echo(f"~ [{s.short_id}] {s.label}: {', '.join(fields)} changed")
    typer.echo(f"added {len(d.added)}, removed {len(d.removed)}, changed {len(d.changed)}")


@app.command("export")
def export(
    bank: str = typer.Argument(..., help="Skill bank file."),
    out: str = typer.Argument(..., help="Output: a file (official) or a directory (agent-skills)."),
    to: str = typer.Option(..., "--to", help="official | agent-skills"),
) -> None:
    """Export as an official SkillRL JSON file or as Agent Skills folders (one SKILL.md per skill)."""
    get_config()  # registers user categories (env.categories) before a bank is read
    loaded = load_bank(bank)
    if _fmt(to, ("official", "agent-skills"), "--to") == "official":
        save_bank(loaded, out, fmt="official")
        typer.echo(f"wrote {len(loaded)} skills (official format) to {out}")
        return
    from krill.formats.agent_skills import export_agent_skills

    files = export_agent_skills(loaded, out)
    typer.echo(f"wrote {len(files)} SKILL.md folders under {out}")


@app.command("dedup")
def dedup(
    bank: str = typer.Argument(..., help="Skill bank file."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Output bank (default: overwrite BANK atomically)."
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Cosine at which skills merge (default distill.merge_threshold)."
    ),
) -> None:
    """Merge near-duplicate skills (cosine >= threshold), keeping the union of provenance."""
    from krill.models import build_embedder
    from krill.skills.bank_ops import dedup_bank

    cfg = get_config()
    loaded = load_bank(bank)
    before = len(loaded)
    thr = cfg.distill.merge_threshold if threshold is None else threshold
    result, n_merged = dedup_bank(loaded, build_embedder(cfg), thr)
    save_bank(result, out or bank)
    typer.echo(
        f"merged {n_merged} near-duplicates (cosine >= {thr}): {before} -> {len(result)} skills, wrote {out or bank}"
    )


@app.command("compression")
def compression(
    bank: str = typer.Option(..., "--bank", help="Skill bank file."),
    trajectories: str = typer.Option(..., "--trajectories", help="Trajectories (JSONL or JSON array)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Tokens of the retrieved-skill context vs the raw-trajectory memory it replaces, same tasks."""
    from krill.evaluate.compression import compression_report
    from krill.formats.trajectories import load_trajectories

    trajs = load_trajectories(
        trajectories, require_steps=True
    )  # a step-less episode has no memory to compare
    report = compression_report(load_bank(bank), trajs, get_config())
    _print_dict(report, as_json, title="token compression")


def _print_dict(d: dict, as_json: bool, *, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(d, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in d.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {_readable(v)}" for k, v in value.items()) or "-"
        table.add_row(str(key), _readable(value))
    console.print(table)


def _readable(value: object) -> str:
    """A float as a person reads it (0.5374, 1,234.5), not Python's 17 digits; `--json` keeps them all."""
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)
