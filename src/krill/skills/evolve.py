"""Recursive skill evolution: validate per category, ask the teacher about the failing ones, grow the bank.

The pure part (design.md): from validation episodes, each category below `evolution.threshold` hands
its real failures (up to `deep` in full, `shallow` more summarised) to the teacher, which proposes at
most `max_new_skills` skills *for that category*; near-duplicates of existing skills are dropped, the
rest are filed as that category's task-specific skills with history entries, and `current_cycle`
increments. Failing categories are visited in a rotating order so that, if the teacher fails
mid-cycle, the next cycle starts with the ones that missed out — no silent global cap. When to
validate, on what, and where banks are saved is the training loop's: `krill.train.evolution`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from krill.config import KrillConfig
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
