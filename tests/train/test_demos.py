"""Skill-augmented SFT demos: agent prompts with retrieved skills, targets that cite them, JSONL round trip."""

import re

import pytest

from krill.agent.prompts import PromptState, build_messages
from krill.config import load_config
from krill.errors import KrillError
from krill.schema import Skill, SkillBank, Step, Trajectory
from krill.train.demos import analytic_reasoning, build_sft_demos, load_demos, make_retriever, save_demos

HEAT = Skill(name="Heat With Microwave", principle="Heat the object with the microwave before placing it.",
             when_to_apply="The task says hot.", category="Heat")  # fmt: skip
GENERAL = Skill(name="Use Only Admissible Actions", principle="Copy an admissible action exactly.",
                when_to_apply="Every step.")  # fmt: skip


@pytest.fixture(autouse=True)
def _hash_embedder(monkeypatch, tmp_path):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    monkeypatch.setenv("KRILL_CACHE", str(tmp_path / "cache"))


def _bank():
    return SkillBank(general_skills=[GENERAL], task_specific_skills={"Heat": [HEAT]})


def _traj(success=True):
    acts = [
        "go to countertop 1",
        "take apple 1 from countertop 1",
        "heat apple 1 with microwave 1",
        "put apple 1 in/on fridge 1",
    ]
    steps = [Step(observation=f"obs {i}", action=a, step_index=i, valid=True,
                  admissible_actions=[a, "look"]) for i, a in enumerate(acts)]  # fmt: skip
    return Trajectory(task_description="put a hot apple in fridge", task_category="Heat", steps=steps,
                      total_reward=10.0 if success else 0.0, success=success)  # fmt: skip


def _cfg(think, **sets):
    return load_config(preset="tiny", overrides=[f"agent.think={str(think).lower()}", "skill_retrieval.mode=template",
                                                 *[f"{k}={v}" for k, v in sets.items()]])  # fmt: skip


def test_trajectory_demos_rebuild_the_agent_prompt_and_cite_skills():
    cfg = _cfg(True)
    demos = build_sft_demos(_bank(), cfg, source=[_traj(), _traj(success=False)], n=10)
    assert len(demos) == 4  # the failed trajectory teaches nothing
    third = demos[2]["messages"]
    # the prompt is exactly what the LLM agent builds at step 3 (history, admissible, skills)
    retrieved = make_retriever(_bank(), cfg).retrieve("put a hot apple in fridge", "Heat")
    t = _traj()
    state = PromptState("put a hot apple in fridge", "obs 2", ["heat apple 1 with microwave 1", "look"],
                        [(s.observation, s.action) for s in t.steps[:2]], 2, cfg.env.name, "obs 0")  # fmt: skip
    assert third[:-1] == build_messages(state, cfg, retrieved)
    assert (
        "## Retrieved Relevant Experience" in third[1]["content"]
        and "Heat With Microwave" in third[1]["content"]
    )
    target = third[-1]["content"]
    m = re.fullmatch(r"<think>(.+)</think><action>(.+)</action>", target, re.S)
    assert m and m.group(2) == "heat apple 1 with microwave 1"
    assert '"Heat With Microwave"' in m.group(1)  # the applicable skill is cited by name


def test_bare_action_targets_when_think_is_off():
    demos = build_sft_demos(_bank(), _cfg(False), source=[_traj()], n=2)
    assert [d["messages"][-1]["content"] for d in demos] == [
        "go to countertop 1",
        "take apple 1 from countertop 1",
    ]


def test_llm_teacher_writes_the_reasoning():
    class Teacher:
        def __init__(self):
            self.prompts = []

        def complete_json(self, prompts, *, schema):
            self.prompts += prompts
            return [{"reasoning": f"because skill #{i}"} if i else None for i in range(len(prompts))]

    teacher = Teacher()
    demos = build_sft_demos(_bank(), _cfg(True), source=[_traj()], teacher=teacher, n=2)
    assert len(teacher.prompts) == 2 and "take apple 1 from countertop 1" in teacher.prompts[1][0]["content"]
    assert (
        demos[1]["messages"][-1]["content"]
        == "<think>because skill #1</think><action>take apple 1 from countertop 1</action>"
    )
    assert "Heat With Microwave" in demos[0]["messages"][-1]["content"]  # None answer → analytic fallback


def test_analytic_reasoning_prefers_skills_matching_the_action():
    cards = [{"name": "Explore", "principle": "Open drawers.", "when": "x", "tier": "general"},
             {"name": "Heat It", "principle": "Use the microwave to heat food.", "when": "hot", "tier": "task"}]  # fmt: skip
    text = analytic_reasoning("heat an egg", "heat egg 1 with microwave 1", cards)
    assert '"Heat It"' in text and "Explore" not in text and text.endswith("heat egg 1 with microwave 1.")


def test_demo_jsonl_round_trip_and_datasets(tmp_path):
    demos = build_sft_demos(_bank(), _cfg(True), source=[_traj()], n=3)
    path = save_demos(demos, tmp_path / "demos.jsonl")
    assert load_demos(path) == demos
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 3 and ds[0]["messages"][-1]["role"] == "assistant"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(KrillError, match="line 1: the last message must be the assistant's"):
        load_demos(bad)


def test_expert_demos_use_the_llm_agent_prompt_on_a_real_env():
    cfg = _cfg(True, **{"env.name": "webshop", "agent.max_prompt_length": 4000})
    demos = build_sft_demos(_bank(), cfg, source="expert", n=4)
    assert len(demos) == 4
    first, second = demos[0]["messages"], demos[1]["messages"]
    assert first[0]["content"].startswith("You are an expert shopping agent")
    assert (
        "## Admissible Actions" in first[1]["content"]
        and "## Retrieved Relevant Experience" in first[1]["content"]
    )
    prev_action = re.search(r"<action>(.+)</action>", first[-1]["content"]).group(1)
    assert f"Action: {prev_action}" in second[1]["content"]  # history shows the expert's previous action
    assert demos[0]["meta"]["source"] == "expert"


def test_demo_source_accepts_chat_demos_or_trajectories(tmp_path):
    from krill.formats.trajectories import save_trajectories
    from krill.train.demos import load_demo_source

    cfg = _cfg(True)
    traj_path = tmp_path / "eto.jsonl"
    save_trajectories(traj_path, [_traj(), _traj(success=False)])
    from_trajs = load_demo_source(traj_path, _bank(), cfg, 3)
    assert len(from_trajs) == 3 and from_trajs[0]["meta"]["source"] == "trajectories"
    chat = save_demos(from_trajs, tmp_path / "chat.jsonl")
    assert load_demo_source(chat, None, cfg, 2) == from_trajs[:2]
