"""Skill evolution inside the RL loop: every `evolution.validation_interval` iterations, validate the
current policy on a split RL never trains on, evolve the bank from its failures
(`krill.skills.evolve.evolve_bank`), and save `cycle_K.json` with a line in `evolution.jsonl`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from krill.config import KrillConfig
from krill.formats.banks import save_bank
from krill.io import append_jsonl
from krill.schema import SkillBank, Trajectory
from krill.skills.evolve import evolve_bank

log = logging.getLogger(__name__)


def evolve_hook_for(cfg: KrillConfig, rl_dir: str | Path, banks_dir: str | Path | None = None) -> Any:
    """The recursive-evolution hook for an RL run in `rl_dir` (banks in `banks_dir`), or None when
    `evolution.enabled` is off."""
    return make_evolve_hook(cfg, rl_dir, banks_dir=banks_dir) if cfg.evolution.enabled else None


def make_evolve_hook(
    cfg: KrillConfig, rl_dir: str | Path, banks_dir: str | Path | None = None, validate: Any = None
):
    """The hook `run_rl` calls every validation_interval iterations: validate, evolve, save cycle_K.json.

    Banks go to `banks_dir/cycle_K.json` (default `rl_dir/banks`; `krill train` uses RUN/banks), the
    per-cycle log to `rl_dir/evolution.jsonl`, validation episodes to `rl_dir/validation/`.
    `validate(policy, bank, iteration) -> trajectories` replaces the default validation (greedy
    episodes of the current policy on `valid_seen`, a split RL never trains on).
    """
    from krill.models import build_embedder
    from krill.skills.teachers import make_teacher

    rl_dir = Path(rl_dir)
    banks_dir = Path(banks_dir) if banks_dir is not None else rl_dir / "banks"
    embedder = build_embedder(cfg)
    teacher = make_teacher(cfg, work_dir=banks_dir / "evolution.work")
    validate = validate or _validator(cfg, rl_dir, embedder)

    def hook(iteration: int, policy: Any, bank: SkillBank, recent: list[Trajectory] | None = None):
        start = banks_dir / f"cycle_{bank.current_cycle}.json"
        if not start.exists():  # the bank RL began with: the report's evolution list starts from it
            save_bank(bank, start)
        validation = validate(policy, bank, iteration)
        # the turn order follows the bank's own cycle count, so a resumed run visits categories alike
        report = evolve_bank(bank, validation, teacher, embedder, cfg, recent=recent, turn=bank.current_cycle)
        path = banks_dir / f"cycle_{report.cycle}.json"
        save_bank(bank, path)
        report.bank_path = str(path)
        append_jsonl(rl_dir / "evolution.jsonl", {"iteration": iteration, **report.to_dict()})
        log.info(
            "evolution cycle %d: below %.2f: %s; added %d; bank size %d",
            report.cycle, cfg.evolution.threshold, ", ".join(report.failing) or "none",
            sum(len(v) for v in report.added.values()), report.bank_size,
        )  # fmt: skip
        return bank

    return hook


def _validator(cfg: KrillConfig, rl_dir: Path, embedder: Any):
    """Greedy validation episodes of the current policy with the current bank on `valid_seen`."""

    def validate(policy: Any, bank: SkillBank, iteration: int) -> list[Trajectory]:
        from krill.agent.actors import LLMActor
        from krill.agent.prompts import make_retriever
        from krill.evaluate.eval import evaluate, trajectories_path
        from krill.formats.trajectories import load_trajectories

        retriever = make_retriever(bank, cfg, embedder=embedder)
        actor = LLMActor(policy, retriever, cfg, cfg.sampling("validation"))
        out = rl_dir / "validation" / f"iter_{iteration}.json"
        evaluate(cfg, policy="local", bank=bank, out=out, split="valid_seen",
                 episodes=cfg.evolution.validation_episodes, actor=actor)  # fmt: skip
        return load_trajectories(trajectories_path(out))

    return validate
