"""Which skills evolution added: read from the bank's history alone (cycle 0 = distilled)."""

from __future__ import annotations

from krill.schema import HistoryEntry, Skill, SkillBank
from krill.skills.evolved import evolved_skill_ids


def _skill(sid: str, cat: str = "Heat") -> Skill:
    return Skill(id=sid, name=f"skill {sid}", principle="p", when_to_apply="w", category=cat)


def hand_bank() -> SkillBank:
    """d0, g0: distilled (cycle 0); e1, e2: added by evolution cycles 1 and 2; re: distilled, then
    filed again at cycle 1; bare: no history entry (an official bank); gone: evolved, then removed."""
    bank = SkillBank()
    bank.add(_skill("d0"), cycle=0)
    bank.add(_skill("g0", cat="General"), cycle=0)
    bank.add(_skill("e1"), cycle=1)
    bank.add(_skill("e2", cat="General"), cycle=2)
    bank.add(_skill("re"), cycle=0)
    bank.history.append(HistoryEntry(skill_id="re", evolution_cycle=1))
    bank.task_specific_skills["Heat"].append(_skill("bare"))
    bank.add(_skill("gone"), cycle=1)
    bank.remove("gone")
    return bank


def test_evolved_are_the_skills_whose_history_begins_after_cycle_0():
    assert evolved_skill_ids(hand_bank()) == {"e1", "e2"}


def test_a_bank_without_evolution_has_none():
    bank = SkillBank()
    bank.add(_skill("d0"), cycle=0)
    assert evolved_skill_ids(bank) == set() and evolved_skill_ids(SkillBank()) == set()
