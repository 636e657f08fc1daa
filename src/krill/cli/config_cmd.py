"""Show the effective configuration (secrets masked)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Show the effective configuration (secrets masked).", no_args_is_help=True)
