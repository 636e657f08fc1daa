"""The eval result's `skills` block: which skills the prompts carried, and how many episodes carried
one that evolution added (hand-built bank and trajectories; one real `evaluate` over a fake actor)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
sys.path.insert(0, str(Path(__file__).parents[1] / "skills"))
from agent_fakes import EnvListPool, KitchenEnv  # noqa: E402
from test_evolved import hand_bank  # noqa: E402

from krill.agent.actors import Decision  # noqa: E402
from krill.config import KrillConfig  # noqa: E402
from krill.errors import KrillError  # noqa: E402
from krill.evaluate.eval import EVAL_FORMAT, evaluate, load_eval, skill_usage  # noqa: E402
from krill.evaluate.stats import summarize  # noqa: E402
from krill.io import write_json  # noqa: E402
from krill.schema import Step, Trajectory  # noqa: E402


def _traj(skills: list[str]) -> Trajectory:
    return Trajectory(task_description="t", task_category="Heat", success=False,
                      steps=[Step(observation="o", action="a")], metadata={"skills_used": skills})  # fmt: skip


def test_skill_usage_counts_episodes_skills_and_evolved_ones():
    # 5 episodes: two carry evolved skills (e1; e2 with d0), one only distilled ones, one none, one
    # a skill distilled at cycle 0 and filed again at cycle 1 (not evolved)
    trajs = [_traj(["d0", "e1"]), _traj(["e2", "d0", "g0"]), _traj(["d0"]), _traj([]), _traj(["re"])]
    assert skill_usage(trajs, hand_bank()) == {
        "episodes": 5,
        "with_skills": 4,
        "distinct_used": 5,  # d0, e1, e2, g0, re
        "evolved_in_bank": 2,
        "with_evolved": 2,
        "evolved_share": 0.4,
        "evolved_used": ["e1", "e2"],
    }


def test_skill_usage_without_a_bank_or_episodes():
    assert skill_usage([_traj(["m1"])], None)["evolved_in_bank"] == 0  # the memory baseline: no bank
    empty = skill_usage([], hand_bank())
    assert (empty["episodes"], empty["evolved_share"], empty["evolved_used"]) == (0, 0.0, [])


def _eval_file(path: Path, **extra) -> Path:
    res = {k: v.to_dict() for k, v in summarize([_traj([])]).items()}
    return write_json(path, {"format": EVAL_FORMAT, "env": "alfworld", "split": "s", "policy": "local",
                             "results": res, **extra})  # fmt: skip


def test_load_eval_accepts_results_without_the_block_and_checks_one_given(tmp_path):
    assert "skills" not in load_eval(_eval_file(tmp_path / "old.json"))
    good = skill_usage([_traj(["e1"])], hand_bank())
    assert load_eval(_eval_file(tmp_path / "new.json", skills=good))["skills"]["evolved_share"] == 1.0
    bad = {k: v for k, v in good.items() if k != "with_evolved"}
    with pytest.raises(KrillError, match="missing field"):
        load_eval(_eval_file(tmp_path / "bad.json", skills=bad))


class SkillActor:
    """Looks around; task tK's prompt carried the skills SKILLS[tK] (none for the other tasks), recorded
    as an LLM actor records them."""

    name = "skill-actor"
    SKILLS = {"t0": ["e1", "d0"], "t1": ["d0"], "t2": []}

    def act(self, episodes, pool):
        return [Decision("look", extras={"skills_used": self.SKILLS.get(ep.task_id, [])}) for ep in episodes]


def test_evaluate_writes_the_skills_block(tmp_path):
    out = tmp_path / "eval.json"
    pool = EnvListPool([KitchenEnv() for _ in range(2)])  # its 6 tasks t0..t5
    evaluate(KrillConfig(), policy="skill-actor", bank=hand_bank(), out=out, actor=SkillActor(), pool=pool)
    skills = json.loads(out.read_text())["skills"]
    assert (skills["episodes"], skills["with_skills"], skills["with_evolved"]) == (6, 2, 1)
    assert skills["evolved_used"] == ["e1"] and skills["evolved_share"] == pytest.approx(1 / 6)
