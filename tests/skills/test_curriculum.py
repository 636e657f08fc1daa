"""skills.curriculum: how many skills GRPO's prompts show per iteration, and which categories go."""

from __future__ import annotations

from krill.config import KrillConfig
from krill.schema import CommonMistake, Skill
from krill.skills.curriculum import (
    CurriculumRetriever,
    curriculum_retriever,
    shown_fraction,
    withdrawn_categories,
)
from krill.skills.retrieval import Retrieved


def skill(name: str, cat: str = "General") -> Skill:
    return Skill(name=name, principle="p", when_to_apply="w", category=cat)


class FixedRetriever:
    """2 general skills, 4 task skills of the task's category (Heat or Clean), 2 mistakes: ranked."""

    def task_category(self, task, category):
        return category or ("Heat" if "heat" in task else "Clean")

    def retrieve(self, task, category=None):
        cat = self.task_category(task, category)
        return Retrieved(
            general=[skill("g1"), skill("g2")],
            specific=[(skill(f"{cat}{i}", cat), 1.0 - i / 10) for i in range(4)],
            mistakes=[CommonMistake(description=f"m{i}", how_to_avoid="x") for i in range(2)],
            category=cat,
        )


def counts(r: Retrieved) -> tuple[int, int, int]:
    return len(r.general), len(r.specific), len(r.mistakes)


def test_linear_schedule_shows_fewer_skills_each_iteration_down_to_none():
    cfg = KrillConfig().override({"skills.curriculum": "linear", "rl.iterations": 4})
    got = [
        counts(curriculum_retriever(FixedRetriever(), cfg, t, []).retrieve("heat an egg")) for t in range(4)
    ]
    # shares 3/4, 1/2, 1/4, 0 of (2, 4, 2), rounded half up
    assert got == [(2, 3, 2), (1, 2, 1), (1, 1, 1), (0, 0, 0)]
    assert [shown_fraction(t, 4) for t in range(4)] == [0.75, 0.5, 0.25, 0.0]


def test_the_best_ranked_skills_are_the_ones_kept():
    r = CurriculumRetriever(FixedRetriever(), fraction=0.5).retrieve("heat an egg")
    assert [s.name for s, _ in r.specific] == ["Heat0", "Heat1"]


def test_success_schedule_withdraws_a_category_once_it_succeeded():
    cfg = KrillConfig().override({"skills.curriculum": "success", "skills.curriculum_threshold": 0.5})
    history = [{"charts/success_rate/Heat": 0.25, "charts/success_rate/Clean": 0.0},
               {"charts/success_rate/Heat": 0.75, "charts/success_rate": 0.4}]  # fmt: skip
    assert withdrawn_categories(history, 0.5) == {"Heat"}
    r = curriculum_retriever(FixedRetriever(), cfg, 2, history)
    assert counts(r.retrieve("heat an egg")) == (0, 0, 0)
    assert counts(r.retrieve("clean a mug")) == (2, 4, 2)  # Clean still below the threshold


def test_no_curriculum_leaves_the_retriever_alone():
    inner = FixedRetriever()
    assert curriculum_retriever(inner, KrillConfig(), 3, []) is inner
    assert curriculum_retriever(None, KrillConfig().override({"skills.curriculum": "linear"}), 0, []) is None
