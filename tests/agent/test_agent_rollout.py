"""The rollout engine with fakes: batched == one at a time, invalid actions, tokens, skills, groups, errors."""

from __future__ import annotations

from agent_fakes import EnvListPool, HashEmbedder, KitchenEnv, RulePolicy

from krill.agent.actors import ExpertActor, LLMActor, RandomActor
from krill.agent.rollout import run_episodes
from krill.config import KrillConfig
from krill.schema import Skill, SkillBank
from krill.skills.retrieval import Retriever


def bank():
    b = SkillBank()
    b.add(Skill(name="Hold before heating", principle="Take the object first", when_to_apply="always"))
    b.add(
        Skill(
            name="Microwave heats",
            principle="heat the object with microwave 1",
            when_to_apply="heat some object",
            category="Heat",
        )
    )
    b.add(
        Skill(
            name="Fridge last",
            principle="put it in fridge after heating",
            when_to_apply="heat and put in fridge",
            category="Heat",
        )
    )
    b.add(
        Skill(
            name="Sink cleans",
            principle="clean with sinkbasin",
            when_to_apply="clean tasks",
            category="Clean",
        )
    )
    return b


def pool(n):
    return EnvListPool([KitchenEnv() for _ in range(n)])


def strip(trajs):
    """Everything but the random trajectory ids."""
    return [t.model_dump(exclude={"id"}) for t in trajs]


TASKS = [f"t{k}" for k in range(6)]


def test_llm_batched_equals_one_at_a_time_and_records_everything():
    cfg = KrillConfig().override({"skill_retrieval.threshold": 0.0})
    policy = RulePolicy()
    b = bank()
    actor = LLMActor(policy, Retriever(b, HashEmbedder(), cfg.skill_retrieval), cfg, want_logprobs=True)
    batched = run_episodes(actor, pool(4), TASKS, max_steps=7)
    assert max(policy.batch_sizes) == 4  # one generate call per step for all live episodes
    calls_batched = len(policy.batch_sizes)
    policy.batch_sizes.clear()
    single = run_episodes(actor, pool(1), TASKS, max_steps=7)
    assert set(policy.batch_sizes) == {1} and len(policy.batch_sizes) > calls_batched
    assert strip(batched) == strip(single)

    t = batched[0]
    assert [s.step_index for s in t.steps] == list(range(len(t.steps)))
    assert any(s.valid is False for s in t.steps) and any(s.valid for s in t.steps)
    for s in t.steps:
        if s.valid is False:  # invalid actions went to the env as-is, which answered "Nothing happens."
            assert s.model_extra["response"].startswith("I would like")
        assert s.model_extra["prompt_text"].startswith("PROMPT:")
        assert len(s.model_extra["response_logprobs"]) == s.model_extra["response_tokens"]
    after_invalid = [t.steps[i + 1].observation for i, s in enumerate(t.steps[:-1]) if s.valid is False]
    assert after_invalid and set(after_invalid) == {"Nothing happens."}
    md = t.metadata
    assert md["num_steps"] == len(t.steps) and md["invalid_actions"] == t.num_invalid > 0
    assert md["total_tokens"] == sum(
        s.model_extra["prompt_tokens"] + s.model_extra["response_tokens"] for s in t.steps
    )
    assert md["policy"] == "rule-policy" and md["environment"] == "kitchen"
    assert "Microwave heats" in t.steps[0].model_extra["prompt_text"]
    assert "Sink cleans" not in t.steps[0].model_extra["prompt_text"]  # other category filtered out
    assert b.general_skills[0].id in md["skills_used"]
    assert set(md["skills_used"]) <= {s.id for s in b.all_skills()} - {s.id for s in b.skills_for("Clean")}
    assert [tr.metadata["task_id"] for tr in batched] == TASKS


def test_expert_and_random_actors():
    expert = run_episodes(ExpertActor(), pool(3), TASKS)
    assert all(t.success and t.total_reward == 10.0 and t.num_invalid == 0 for t in expert)
    assert all(len(t.steps) == 6 for t in expert)  # the shortest plan
    r1 = run_episodes(RandomActor(seed=3), pool(3), TASKS)
    r2 = run_episodes(RandomActor(seed=3), pool(1), TASKS)
    assert strip(r1) == strip(r2)  # per-episode RNG: batching does not change choices
    r3 = run_episodes(RandomActor(seed=4), pool(3), TASKS)
    assert strip(r1) != strip(r3)
    assert all(len(t.steps) == KitchenEnv.max_steps for t in r1 if not t.success)


def test_group_rollouts_are_independent_episodes_and_stream():
    seen = []
    group = ["t1"] * 4 + ["t2"] * 4
    trajs = run_episodes(RandomActor(seed=0), pool(8), group, on_episode=seen.append)
    assert len(trajs) == 8 and len(seen) == 8
    assert [t.metadata["episode_index"] for t in trajs] == list(range(8))
    assert len({tuple(s.action for s in t.steps) for t in trajs[:4]}) > 1  # copies act independently


class BrokenEnv(KitchenEnv):
    def step(self, action):
        if action.startswith("take"):
            raise RuntimeError("engine exploded")
        return super().step(action)


def test_env_failure_ends_that_episode_only():
    trajs = run_episodes(ExpertActor(), EnvListPool([BrokenEnv(), BrokenEnv()]), ["t0", "t1", "t2"])
    assert all(not t.success and "engine exploded" in t.metadata["error"] for t in trajs)
    assert [len(t.steps) for t in trajs] == [2, 2, 2]
