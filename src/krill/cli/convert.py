"""Convert datasets (ETO ALFWorld SFT) to krill trajectories."""

from __future__ import annotations

import typer

app = typer.Typer(help="Convert datasets (ETO ALFWorld SFT) to krill trajectories.", no_args_is_help=True)
