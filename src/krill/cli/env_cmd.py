"""Environments: generate games, serve over HTTP, play in the terminal."""

from __future__ import annotations

import typer

app = typer.Typer(help="Environments: generate games, serve over HTTP, play in the terminal.", no_args_is_help=True)
