"""Constrained decoding (`agent.constrain_actions`): the tiny random model can only answer a given choice."""

from __future__ import annotations

import pytest
from agent_fakes import EnvListPool, HashEmbedder, KitchenEnv

from krill.agent.actors import LLMActor
from krill.agent.rollout import run_episodes
from krill.config import KrillConfig
from krill.errors import KrillError
from krill.models.choices import ChoiceTrie
from krill.models.local import LocalPolicy
from krill.schema import SkillBank
from krill.skills.retrieval import Retriever
from krill.testing.scoring import teacher_forced_logprobs
from krill.train.demos import DemoActor

CHOICES = ["go to cabinet 1", "go to cabinet 10", "take mug 1 from cabinet 1", "look"]


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def policy() -> LocalPolicy:
    return LocalPolicy("tiny", device="cpu")


def test_trie_shares_prefixes_and_each_node_sees_only_its_ancestors():
    trie = ChoiceTrie.build([[1, 2], [1, 2, 3], [4]])
    assert trie.tokens == [1, 2, 3, 4] and trie.parents == [-1, 0, 1, -1] and trie.depths == [0, 1, 2, 0]
    assert trie.ends == [1, 2, 3]  # "cabinet 1" ends inside "cabinet 10"
    assert trie.ancestry().tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [False, False, False, True],
    ]


def test_greedy_answer_is_the_most_likely_whole_choice(policy):
    """One trie pass picks what scoring every choice on its own (tokens + end-of-turn) would pick."""
    prompts = [_msgs(f"Task {k}: find the mug.") for k in range(4)]
    gens = policy.generate(prompts, max_new_tokens=12, want_logprobs=True, choices=[CHOICES] * 4)
    end = policy.tokenizer.eos_token_id
    for msgs, g in zip(prompts, gens, strict=True):
        text = policy.prompt_text(msgs)
        ids = [[*policy.tokenizer(c, add_special_tokens=False)["input_ids"], end] for c in CHOICES]
        totals = [sum(lp) for lp in teacher_forced_logprobs(policy, [text] * len(ids), ids)]
        assert g.text == CHOICES[max(range(len(ids)), key=totals.__getitem__)]
        assert sum(g.logprobs) == pytest.approx(max(totals), abs=1e-4)


def test_random_model_answers_only_given_choices(policy):
    prompts = [_msgs(f"Task {k}: find the mug.") for k in range(6)]
    free = policy.generate(prompts, max_new_tokens=12)
    assert not any(g.text in CHOICES for g in free)  # the random model babbles on its own
    for temperature in (0.0, 1.0):
        gens = policy.generate(
            prompts, max_new_tokens=12, temperature=temperature, seed=3, want_logprobs=True,
            choices=[CHOICES] * 5 + [None],
        )  # fmt: skip
        assert all(g.text in CHOICES and g.finish_reason == "stop" for g in gens[:5])
        if temperature == 0:
            assert gens[5].text == free[5].text  # an unconstrained row in the same batch is untouched
        # recorded log-probs are the model's own (unmasked), which is what GRPO's score() recomputes
        rescored = teacher_forced_logprobs(policy, [g.prompt_text for g in gens], [g.token_ids for g in gens])
        for g, lp in zip(gens, rescored, strict=True):
            assert lp == pytest.approx(g.logprobs, abs=1e-4)


def test_constrained_rollout_never_makes_an_invalid_action(policy):
    cfg = KrillConfig().override({"agent.constrain_actions": True, "model.policy.max_new_tokens": 16})
    actor = LLMActor(policy, Retriever(SkillBank(), HashEmbedder(), cfg.skill_retrieval), cfg)
    trajs = run_episodes(actor, EnvListPool([KitchenEnv() for _ in range(2)]), ["t0", "t1"], max_steps=5)
    steps = [s for t in trajs for s in t.steps]
    assert len(steps) == 10 and all(s.valid for s in steps)
    cfg = cfg.override({"agent.constrain_actions": False})
    free = run_episodes(LLMActor(policy, None, cfg), EnvListPool([KitchenEnv()]), ["t0"], max_steps=5)
    assert not any(s.valid for s in free[0].steps)


def test_constraint_needs_bare_actions_and_a_local_policy(policy):
    cfg = KrillConfig().override({"agent.constrain_actions": True, "agent.think": True})

    def first_step(actor):
        run_episodes(actor, EnvListPool([KitchenEnv()]), ["t0"], max_steps=1)

    with pytest.raises(
        KrillError, match=r"agent.constrain_actions: needs bare actions \(agent.think: false\)"
    ):
        first_step(LLMActor(policy, None, cfg))
    cfg = cfg.override({"agent.think": False})

    class Remote:
        name = "remote-model"

    with pytest.raises(KrillError, match="policy 'remote-model' cannot constrain its decoding"):
        first_step(LLMActor(Remote(), None, cfg))
    DemoActor(None, cfg)  # SFT demos only build prompts: a constrained config must still make them


def test_a_search_template_is_offered_as_queries_from_the_task_and_webshop_steps_stay_valid(policy):
    from krill.agent.actors import _choices
    from krill.agent.rollout import Episode

    ep = Episode(
        index=0, slot=0, task_id="t", task="i want a red cotton t-shirt, and price lower than 30.00 dollars"
    )
    ep.admissible = ["search[...]", "click[back to search]"]
    assert _choices(ep) == [
        "search[i want a red cotton t-shirt]",
        "search[red cotton t-shirt]",
        "click[back to search]",
    ]
    from krill.envs.pool import SerialPool

    cfg = KrillConfig().override({"agent.constrain_actions": True, "env.name": "webshop",
                                  "env.webshop.num_products": 200, "env.webshop.num_test_goals": 20})  # fmt: skip
    with SerialPool("webshop", 2, "train", cfg) as pool:
        trajs = run_episodes(LLMActor(policy, None, cfg), pool, pool.task_ids()[:2], max_steps=3)
    steps = [s for t in trajs for s in t.steps]
    assert steps[0].action.startswith("search[") and all(s.valid for s in steps)
