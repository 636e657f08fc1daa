"""The original krill's global flags, also accepted after the verb.

The original (Rust, clap) declares `--config`, `--env` and `--mock` with `global = true`, so its
docs type them after the verb too: `krill distill --trajectories T --output B --config config.demo.json`.
Each verb that takes them passes them to `apply` before building its config.
"""

from __future__ import annotations

import typer

from krill.cli.common import STATE, note_mock_once

CONFIG = typer.Option(
    None, "--config", "-c", help="Config file, as the global --config (the original accepts it here)."
)
ENV = typer.Option(None, "--env", help="alfworld | webshop, as the global --env.")
MOCK = typer.Option(False, "--mock", help="Built-in offline simulators (the default), as the global --mock.")


def apply(config: str | None = None, env: str | None = None, mock: bool = False) -> None:
    """Fold flags given after the verb into the global ones (after the verb wins, as in clap)."""
    if config:
        STATE.config_file = config
    if env:
        STATE.env = env
    STATE.mock = STATE.mock or mock
    note_mock_once()
