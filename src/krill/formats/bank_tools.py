"""Whole-bank comparisons behind `krill bank stats|merge|diff` (pure functions over SkillBanks).

The one merge and diff of two banks, by skill id; embedding-based dedup is `krill.skills.bank_ops`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from krill.formats.banks import category_order
from krill.schema import HistoryEntry, Skill, SkillBank

_COMPARED = ("name", "principle", "when_to_apply", "category")


@dataclass
class BankDiff:
    added: list[Skill] = field(default_factory=list)
    removed: list[Skill] = field(default_factory=list)
    changed: list[tuple[Skill, Skill, list[str]]] = field(default_factory=list)  # (old, new, fields)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        brief = lambda s: {"id": s.id, "name": s.name, "category": s.category}  # noqa: E731
        return {
            "added": [brief(s) for s in self.added],
            "removed": [brief(s) for s in self.removed],
            "changed": [{**brief(new), "fields": f} for _, new, f in self.changed],
        }


def diff_banks(a: SkillBank, b: SkillBank) -> BankDiff:
    """Skills added in `b`, removed from `a`, and changed (same id, different text or category)."""
    old = {s.id: s for s in a.all_skills()}
    new = {s.id: s for s in b.all_skills()}
    out = BankDiff()
    out.added = [s for sid, s in new.items() if sid not in old]
    out.removed = [s for sid, s in old.items() if sid not in new]
    for sid, s in new.items():
        if sid in old:
            fields = [f for f in _COMPARED if getattr(old[sid], f) != getattr(s, f)]
            if fields:
                out.changed.append((old[sid], s, fields))
    return out


def merge_banks(a: SkillBank, b: SkillBank) -> tuple[SkillBank, dict[str, int]]:
    """Union by id; for an id in both, `b`'s version wins (the newer bank). History and mistakes union."""
    merged = a.model_copy(deep=True)
    counts = {"added": 0, "replaced": 0, "identical": 0, "mistakes_added": 0}
    mine = {s.id: s for s in merged.all_skills()}
    for skill in b.all_skills():
        if skill.id in mine:
            same = mine[skill.id].model_dump() == skill.model_dump()
            counts["identical" if same else "replaced"] += 1
            merged.remove(skill.id)
        else:
            counts["added"] += 1
        file_skill(merged, skill.model_copy(deep=True))
    have = {h.skill_id for h in merged.history}
    for h in b.history:
        if h.skill_id not in have:
            merged.history.append(h.model_copy())
            have.add(h.skill_id)
    # every skill keeps a history entry, as banks written by krill and Rust krill do
    merged.history.extend(HistoryEntry(skill_id=s.id) for s in merged.all_skills() if s.id not in have)
    mids = {m.mistake_id for m in merged.common_mistakes}
    for m in b.common_mistakes:
        if m.mistake_id not in mids:
            merged.common_mistakes.append(m.model_copy(deep=True))
            counts["mistakes_added"] += 1
    merged.current_cycle = max(a.current_cycle, b.current_cycle)
    return merged, counts


def file_skill(bank: SkillBank, skill: Skill) -> None:
    """Put `skill` under its tier (general or its category), without a history entry."""
    if skill.is_general:
        bank.general_skills.append(skill)
    else:
        bank.task_specific_skills.setdefault(skill.category, []).append(skill)


def bank_stats(bank: SkillBank) -> dict[str, Any]:
    """Counts per tier and category, embedding coverage, history cycles, duplicate names, text sizes."""
    skills = bank.all_skills()
    names = [s.name.strip().lower() for s in skills]
    with_emb = [s for s in skills if s.embedding is not None]
    cycles: dict[int, int] = {}
    for h in bank.history:
        cycles[h.evolution_cycle] = cycles.get(h.evolution_cycle, 0) + 1
    words = [len(f"{s.principle} {s.when_to_apply}".split()) for s in skills]
    return {
        "total_skills": len(skills),
        "general": len(bank.general_skills),
        "per_category": {c: len(bank.task_specific_skills[c]) for c in category_order(bank.categories())},
        "common_mistakes": len(bank.common_mistakes),
        "embedded": len(with_emb),
        "embedding_dim": bank.embedding_dim(),
        "current_cycle": bank.current_cycle,
        "history_by_cycle": dict(sorted(cycles.items())),
        "duplicate_names": len(names) - len(set(names)),
        "avg_words_per_skill": round(sum(words) / len(words), 1) if words else 0.0,
        "sources": _count((s.source or "unknown") for s in skills),
    }


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


__all__ = ["BankDiff", "bank_stats", "diff_banks", "file_skill", "merge_banks"]
