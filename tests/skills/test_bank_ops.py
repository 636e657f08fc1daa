"""Bank operations: dedup/merge with provenance, merge two banks, diff, add evolved skills."""

from __future__ import annotations

import numpy as np
from test_analytic_synth import HashEmbedder

from krill.formats.bank_tools import diff_banks, merge_banks
from krill.schema import Provenance, Skill, SkillBank
from krill.skills.bank_ops import add_if_novel, dedup_bank


def _skill(name, principle, cat="Heat", tids=("a",), success=True):
    return Skill(
        name=name, principle=principle, when_to_apply="heating tasks", category=cat,
        provenance=[Provenance(trajectory_id=t, success=success) for t in tids],
    )  # fmt: skip


P = "Heat the object with the microwave after taking it and before placing it in the target receptacle."


def test_dedup_merges_near_duplicates_with_union_of_provenance():
    bank = SkillBank()
    bank.add(_skill("Heat with the microwave", P, tids=("t1", "t2")))
    bank.add(_skill("Heat with the microwave", P + " Always.", tids=("t3",)))
    bank.add(_skill("Open closed receptacles", "Open the fridge before taking from it.", tids=("t4",)))
    out, merged = dedup_bank(bank, HashEmbedder(), 0.9)
    assert merged == 1 and len(out) == 2
    heat = next(s for s in out.all_skills() if s.name == "Heat with the microwave")
    assert [p.trajectory_id for p in heat.provenance] == ["t1", "t2", "t3"]
    assert heat.principle == P  # the better-supported wording is kept
    assert {h.skill_id for h in out.history} == {s.id for s in out.all_skills()}
    assert len(bank) == 3  # the input bank is not mutated
    again, merged2 = dedup_bank(out, HashEmbedder(), 0.9)
    assert merged2 == 0 and len(again) == 2


def test_dedup_threshold_one_merges_only_identical_text():
    bank = SkillBank()
    bank.add(_skill("A", P, tids=("t1",)))
    bank.add(_skill("A", P + " x", tids=("t2",)))
    assert dedup_bank(bank, HashEmbedder(), 1.0)[1] == 0


def test_merge_banks_and_diff():
    a, b = SkillBank(), SkillBank()
    shared = _skill("Shared", "Shared principle text here.", tids=("s1",))
    a.add(shared)
    a.add(_skill("Only in a", "Removed later.", cat="Cool"))
    b.add(shared.model_copy(deep=True, update={"provenance": [Provenance(trajectory_id="s2", success=True)]}))
    changed = _skill("Changed", "Old text.", cat="Pick")
    a.add(changed)
    b.add(changed.model_copy(update={"principle": "New text."}))
    b.add(_skill("Only in b", "Added by evolution.", cat="Clean"))
    m, counts = merge_banks(a, b)
    assert {s.name for s in m.all_skills()} == {"Shared", "Only in a", "Changed", "Only in b"}
    assert [p.trajectory_id for p in m.get(shared.id).provenance] == ["s2"]  # b, the newer bank, wins
    assert m.get(changed.id).principle == "New text."
    assert counts == {"added": 1, "replaced": 2, "identical": 0, "mistakes_added": 0}
    assert {h.skill_id for h in m.history} == {s.id for s in m.all_skills()}
    d = diff_banks(a, b)
    assert [s.name for s in d.added] == ["Only in b"]
    assert [s.name for s in d.removed] == ["Only in a"]
    assert [(x.principle, y.principle, f) for x, y, f in d.changed] == [
        ("Old text.", "New text.", ["principle"])
    ]
    assert diff_banks(a, a).empty


def test_add_if_novel_drops_near_duplicates_and_files_under_category():
    bank = SkillBank()
    bank.add(_skill("Heat with the microwave", P))
    emb = HashEmbedder()
    new = [
        _skill("Heat with the microwave", P, cat="General"),  # duplicate of an existing skill
        _skill("Check the fridge for eggs", "Eggs are usually in the fridge; open it first.", cat="General"),
        _skill("Check the fridge for eggs", "Eggs are usually in the fridge; open it first.", cat="General"),
    ]
    added = add_if_novel(bank, new, emb, 0.9, category="Heat", cycle=2)
    assert [s.name for s in added] == ["Check the fridge for eggs"]
    assert added[0].category == "Heat" and added[0].source == "evolution"
    assert added[0] in bank.skills_for("Heat")
    assert bank.history[-1].skill_id == added[0].id and bank.history[-1].evolution_cycle == 2
    assert np.isclose(np.linalg.norm(added[0].embedding), 1.0)


def test_evolution_cycle_with_the_analytic_teacher_adds_at_most_max_new_to_one_category():
    from test_analytic_synth import synth_trajectories

    from krill.config import KrillConfig
    from krill.skills.distill import distill
    from krill.skills.teachers.analytic import AnalyticTeacher

    cfg, emb = KrillConfig(), HashEmbedder()
    bank, _ = distill(synth_trajectories(60, 60, seed=1), AnalyticTeacher(cfg), emb, cfg)
    before = {c: len(bank.skills_for(c)) for c in bank.categories()}
    n_general = len(bank.general_skills)
    fails = [t for t in synth_trajectories(0, 60, seed=8, prefix="v") if t.task_category == "Cool"]
    teacher = AnalyticTeacher(cfg)
    proposals = teacher.propose_for_category(
        "Cool", fails[:10], bank.skills_for("Cool"), 3, shallow=fails[10:]
    )
    added = add_if_novel(bank, proposals, emb, cfg.evolution.dedup_threshold, category="Cool", cycle=1)
    assert 1 <= len(added) <= 3
    assert len(bank.skills_for("Cool")) == before["Cool"] + len(added)
    assert all(len(bank.skills_for(c)) == n for c, n in before.items() if c != "Cool")
    assert len(bank.general_skills) == n_general
    assert {h.evolution_cycle for h in bank.history if h.skill_id in {s.id for s in added}} == {1}
    again = add_if_novel(bank, proposals, emb, cfg.evolution.dedup_threshold, category="Cool", cycle=2)
    assert again == []  # the same proposals are now near-duplicates of what the bank holds


def test_dedup_re_embeds_skills_embedded_by_another_model():
    bank = SkillBank()
    a = bank.add(_skill("Heat with the microwave", P, tids=("t1",)))
    b = bank.add(_skill("Heat with the microwave", P, tids=("t2",)))
    a.embedding, b.embedding = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]  # another model's vectors: not comparable
    out, merged = dedup_bank(bank, HashEmbedder(64), 0.9)
    assert merged == 1 and len(out.all_skills()[0].embedding) == 64
