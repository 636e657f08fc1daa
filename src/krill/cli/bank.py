"""Skill bank tools: convert, stats, merge, dedup, diff, export, compression."""

from __future__ import annotations

import typer

app = typer.Typer(help="Skill bank tools: convert, stats, merge, dedup, diff, export, compression.", no_args_is_help=True)
