"""Recursive skill evolution: validate per category, ask the teacher about the failing ones, grow the bank.

Every `evolution.validation_interval` RL iterations (design.md): evaluate on a validation split that is
never trained on; for each category below `evolution.threshold`, hand its real failures (up to `deep`
in full, `shallow` more summarised) to the teacher, which proposes at most `max_new_skills` skills
*for that category*; near-duplicates of existing skills are dropped, the rest are filed as that
category's task-specific skills with history entries, `current_cycle` increments, and the bank is saved
as `RUN/banks/cycle_K.json`. Failing categories are visited in a rotating order so that, if the
teacher fails mid-cycle, the next cycle starts with the ones that missed out — no silent global cap.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from krill.config import KrillConfig
from krill.formats.banks import save_bank
from krill.io import append_jsonl
from krill.schema import SkillBank, Trajectory

log = logging.getLogger(__name__)


@dataclass
class EvolutionReport:
    cycle: int
    success_by_category: dict[str, float]
    failing: list[str]
    added: dict[str, list[str]] = field(default_factory=dict)  # category → new skill names
    bank_size: int = 0
    bank_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def success_by_category(trajs: list[Trajectory]) -> dict[str, float]:
    wins: dict[str, list[bool]] = defaultdict(list)
    for t in trajs:
        wins[t.task_category or "unknown"].append(t.success)
    return {c: sum(v) / len(v) for c, v in sorted(wins.items())}


def rotate(categories: list[str], start: int) -> list[str]:
    """Failing categories in turn order: this cycle begins where the last one left off."""
    if not categories:
        return []
    k = start % len(categories)
    return categories[k:] + categories[:k]


def evolve_bank(
    bank: SkillBank,
    validation: list[Trajectory],
    teacher: Any,
    embedder: Any,
    cfg: KrillConfig,
    *,
    recent: list[Trajectory] | None = None,
    turn: int = 0,
) -> EvolutionReport:
    """One evolution cycle on `bank` (mutated in place) from validation (+ recent) trajectories."""
    from krill.skills.bank_ops import add_if_novel

    ecfg = cfg.evolution
    rates = success_by_category(validation)
    failing = [c for c, r in rates.items() if r < ecfg.threshold and c != "unknown"]
    cycle = bank.current_cycle + 1
    report = EvolutionReport(cycle=cycle, success_by_category=rates, failing=failing)
    pool = [*validation, *(recent or [])]
    for category in rotate(failing, turn):
        failures = [t for t in pool if t.task_category == category and not t.success]
        if not failures:
            continue
        deep, shallow = failures[: ecfg.deep], failures[ecfg.deep : ecfg.deep + ecfg.shallow]
        existing = [*bank.general_skills, *bank.skills_for(category)]
        proposals = teacher.propose_for_category(
            category, deep, existing, ecfg.max_new_skills, shallow=shallow
        )[: ecfg.max_new_skills]
        added = add_if_novel(bank, proposals, embedder, ecfg.dedup_threshold, category=category, cycle=cycle)
        report.added[category] = [s.name for s in added]
    bank.current_cycle = cycle
    report.bank_size = len(bank)
    return report


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
        from krill.evaluate.eval import evaluate
        from krill.formats.trajectories import load_trajectories
        from krill.skills.retrieval import build_retriever

        actor = LLMActor(policy, build_retriever(bank, cfg, embedder), cfg, cfg.sampling("validation"))
        out = rl_dir / "validation" / f"iter_{iteration}.json"
        evaluate(cfg, policy="local", bank=bank, out=out, split="valid_seen",
                 episodes=cfg.evolution.validation_episodes, actor=actor)  # fmt: skip
        return load_trajectories(out.with_name(out.stem + ".trajectories.jsonl"))

    return validate
