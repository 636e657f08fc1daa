"""What a run folder holds for whoever uses its trained policy: the recorded config, the adapter, the
final bank and the held-out evaluations. `krill eval --model RUN` and `krill export` read it here.

    krill train --out RUN   RUN/config.yaml, RUN/rl/adapter, RUN/rl/bank.json, RUN/eval/{before,after}.json
    krill rl --out OUT      OUT/config.yaml, OUT/adapter, OUT/bank.json
    krill sft --out OUT     OUT/config.yaml, OUT/adapter_config.json …, and the cycle-0 bank at ../banks/
    krill export … OUT      OUT/config.yaml, OUT/adapter, OUT/bank.json (so an export is a run too)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from krill.errors import KrillError
from krill.io import read_json


@dataclass(frozen=True)
class RunSetup:
    """What a run folder says about its trained policy: the recorded config, the adapter, the final bank."""

    config: Path
    adapter: Path
    bank: Path | None

    @property
    def evals(self) -> dict[str, Path]:
        """The run's held-out evaluations by name (`before`, `after`, …), where a `krill train` run has them."""
        folder = self.config.parent / "eval"
        return {p.stem: p for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def run_setup(folder: Path) -> RunSetup | None:
    """A `krill train` run (RUN/rl/adapter), a `krill rl` folder or export (OUT/adapter) or an SFT folder
    (its own adapter; the cycle-0 bank beside it), when `folder` holds a recorded config; else None."""
    if not (folder / "config.yaml").is_file():
        return None
    layouts = ((folder / "rl" / "adapter", folder / "rl" / "bank.json"), (folder / "adapter", folder / "bank.json"),
               (folder, folder.parent / "banks" / "cycle_0.json"))  # fmt: skip
    for adapter, bank in layouts:
        if (adapter / "adapter_config.json").is_file():
            return RunSetup(folder / "config.yaml", adapter, bank if bank.is_file() else None)
    return None


def finished_phases(folder: Path) -> dict[str, dict[str, Any]]:
    """The phases `folder/state.json` records as done, with their figures, in run order; {} when there
    is no state or it is damaged (resuming reports that: a page or a model card shows what it can)."""
    state = folder / "state.json"
    try:
        done = read_json(state).get("done", {}) if state.is_file() else {}
    except (KrillError, AttributeError):
        return {}
    return {k: v for k, v in done.items() if isinstance(v, dict)} if isinstance(done, dict) else {}
