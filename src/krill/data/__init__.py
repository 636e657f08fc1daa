"""Data shipped inside the package: a small example bank and example trajectories (ALFWorld)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_bank_path() -> Path:
    """The example skill bank (krill format): `krill inspect --example` shows it."""
    return Path(str(resources.files("krill.data").joinpath("example_bank.json")))


def example_trajectories_path() -> Path:
    """A handful of ALFWorld trajectories (JSONL), successes and failures, one per line."""
    return Path(str(resources.files("krill.data").joinpath("example_trajectories.jsonl")))
