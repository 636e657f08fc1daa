"""Which skills of a bank evolution added: those whose history begins at an evolution cycle > 0.

Distillation files its skills at cycle 0 and each evolution cycle K ≥ 1 files its own at K
(`krill.skills.evolve`), so the bank's history says where each skill came from without embeddings.
"""

from __future__ import annotations

from krill.schema import SkillBank


def evolved_skill_ids(bank: SkillBank) -> set[str]:
    """Ids of the bank's skills added by evolution: their lowest history cycle is > 0.

    A skill with no history entry (e.g. from an official bank that kept none) counts as distilled.
    """
    first: dict[str, int] = {}
    for h in bank.history:
        first[h.skill_id] = min(h.evolution_cycle, first.get(h.skill_id, h.evolution_cycle))
    return {s.id for s in bank.all_skills() if first.get(s.id, 0) > 0}
