"""`agent.context: conversation`: an episode is one chat, decoded turn by turn, trained in one pass.

What a user relies on: the ids the decoder saw are exactly what SFT and GRPO score (built by
appending, never re-tokenized); the loss covers the agent's replies and nothing else; one packed
pass equals per-step scoring with the same contexts; long chats lose their oldest exchanges only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
from agent_fakes import EnvListPool, KitchenEnv  # noqa: E402

from krill.agent.actors import LLMActor  # noqa: E402
from krill.agent.prompts import Turn, build_conversation, fit_conversation  # noqa: E402
from krill.agent.rollout import run_episodes  # noqa: E402
from krill.config import KrillConfig, load_config  # noqa: E402
from krill.models.chat_tokens import ChatTokens  # noqa: E402
from krill.models.local import LocalPolicy  # noqa: E402
from krill.models.tiny import build_tiny_model  # noqa: E402
from krill.schema import Skill, SkillBank, Step, Trajectory  # noqa: E402
from krill.train.demos import build_sft_demos  # noqa: E402
from krill.train.grpo import grpo_loss  # noqa: E402
from krill.train.samples import Sample, build_samples, sequence_logprobs  # noqa: E402
from krill.train.sft import collate, summed_token_ce, tokenize_demo  # noqa: E402


def _cfg() -> KrillConfig:
    return KrillConfig().override({"agent.context": "conversation", "model.policy.max_new_tokens": 6})


def _chat(replies=("go to fridge 1", "open fridge 1", "take apple 1 from fridge 1")):
    msgs = [
        {"role": "system", "content": "You act."},
        {"role": "user", "content": "Task: cool an apple. You see a fridge 1."},
    ]
    for k, r in enumerate(replies):
        msgs += [
            {"role": "assistant", "content": r},
            {"role": "user", "content": f"Observation {k + 1}: ok."},
        ]
    return msgs[:-1]  # ends with the last reply


# -- the layout ------------------------------------------------------------------------------------
def test_appended_ids_equal_the_templated_chat():
    _, tok = build_tiny_model(0)
    msgs = _chat()
    ids, spans = ChatTokens(tok).conversation(msgs)
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert ids == tok(text.rstrip("\n"), add_special_tokens=False)["input_ids"]
    assert [tok.decode(ids[a:b]) for a, b in spans] == [
        f"{m['content']}<|im_end|>" for m in msgs if m["role"] == "assistant"
    ]


def test_the_first_turn_holds_skills_task_and_observation_then_one_turn_per_step():
    cfg = _cfg()
    turns = [
        Turn("You are in the kitchen.", ["go to fridge 1"], "go to fridge 1\n"),
        Turn("The fridge 1 is closed.", ["open fridge 1"]),
    ]
    msgs = build_conversation("cool some apple", turns, cfg)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert (
        "Your task is to: cool some apple" in msgs[1]["content"]
        and "You are in the kitchen." in msgs[1]["content"]
    )
    assert msgs[2]["content"] == "go to fridge 1"
    assert (
        msgs[3]["content"].startswith("The fridge 1 is closed.") and "- open fridge 1" in msgs[3]["content"]
    )
    cfg = cfg.override({"agent.show_admissible": False})
    assert "- open fridge 1" not in build_conversation("cool some apple", turns, cfg)[3]["content"]


def test_a_long_chat_drops_its_oldest_exchanges_and_keeps_the_first_turn():
    cfg = _cfg()
    count = lambda text: len(text.split())  # noqa: E731
    turns = [Turn("initial " + "x " * 20, (), "go a")] + [
        Turn(f"obs{k} " + "y " * 20, (), f"act{k}") for k in range(1, 10)
    ]
    turns.append(Turn("latest", ()))
    assert fit_conversation(turns, 0, 10_000, count) == 0  # fits: nothing dropped
    first = fit_conversation(turns, 0, 120, count)
    assert first > 0
    msgs = build_conversation("do it", turns, cfg, first=first)
    assert "initial" in msgs[1]["content"] and msgs[-1]["content"].startswith("latest")
    shown = [m["content"] for m in msgs if m["role"] == "assistant"]
    assert shown == [t.reply for t in turns[first:-1]]  # the oldest replies went, the newest stayed
    assert f"obs{first}" not in " ".join(m["content"] for m in msgs)  # with their observations
    # cut to 3/4 of the limit: the next step extends the cut chat instead of cutting again
    assert fit_conversation([*turns, Turn("one more", ())], first, 120, count) == first


# -- SFT ---------------------------------------------------------------------------------------------
def test_episode_row_labels_exactly_the_replies_and_packed_loss_equals_per_turn_losses():
    model, tok = build_tiny_model(0)
    msgs = _chat()
    ids, labels = tokenize_demo(tok, msgs, 4096)
    spans = ChatTokens(tok).conversation(msgs)[1]
    labelled = [i for i, y in enumerate(labels) if y != -100]
    assert labelled == [i for a, b in spans for i in range(a, b)]
    with torch.no_grad():
        packed, n_packed = summed_token_ce(model, collate([(ids, labels)], tok.pad_token_id))
        per_turn, n_turns = 0.0, 0
        for a, b in spans:  # the same context, one reply labelled at a time
            row = (ids[:b], [-100] * a + ids[a:b])
            loss, n = summed_token_ce(model, collate([row], tok.pad_token_id))
            per_turn, n_turns = per_turn + loss.item(), n_turns + n
    assert n_packed == n_turns == sum(b - a for a, b in spans)
    assert packed.item() / n_packed == pytest.approx(per_turn / n_turns, rel=1e-5)


def test_too_long_episode_rows_are_cut_after_the_last_reply_that_fits():
    _, tok = build_tiny_model(0)
    msgs = _chat()
    ids, spans = ChatTokens(tok).conversation(msgs)
    cut, labels = tokenize_demo(tok, msgs, spans[1][1] + 3)
    assert cut == ids[: spans[1][1]] and labels[-1] != -100


def test_conversation_demos_are_one_row_per_episode(monkeypatch, tmp_path):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    monkeypatch.setenv("KRILL_CACHE", str(tmp_path / "cache"))
    cfg = load_config(
        preset="tiny", overrides=["agent.context=conversation", "skill_retrieval.mode=template"]
    )
    acts = ["go to countertop 1", "take apple 1 from countertop 1", "heat apple 1 with microwave 1"]
    steps = [Step(observation=f"obs {i}", action=a, step_index=i, valid=True) for i, a in enumerate(acts)]
    traj = Trajectory(
        task_description="heat an apple", task_category="Heat", steps=steps, total_reward=10.0, success=True
    )
    bank = SkillBank(
        general_skills=[Skill(name="Look First", principle="Look around.", when_to_apply="Always.")]
    )
    demos = build_sft_demos(bank, cfg, source=[traj, traj.model_copy(update={"id": "second"})], n=4)
    assert len(demos) == 2 and demos[0]["meta"]["steps"] == 3  # n counts steps, in whole episodes
    msgs = demos[0]["messages"]
    assert [m["content"] for m in msgs if m["role"] == "assistant"] == acts
    assert [m["role"] for m in msgs] == ["system", "user"] + ["assistant", "user"] * 2 + ["assistant"]
    assert "Look First" in msgs[1]["content"] and msgs[3]["content"].startswith("obs 1")


# -- rollouts and GRPO -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def policy():
    return LocalPolicy("tiny", seed=0)


def _rollout(policy, cfg, slots, sample=True, tasks=("t0", "t1", "t2", "t3")):
    policy.reset_prefix_cache()
    sampling = cfg.sampling("rollout" if sample else "collect")
    actor = LLMActor(policy, None, cfg, sampling, want_logprobs=True, seed=3)
    return run_episodes(actor, EnvListPool([KitchenEnv() for _ in range(slots)]), list(tasks), max_steps=4)


def test_batched_conversations_equal_one_at_a_time_and_prefill_only_new_turns(policy):
    cfg = _cfg()
    batched = _rollout(policy, cfg, 3, sample=False)
    stats = policy.prefix_cache.stats()
    serial = _rollout(policy, cfg, 1, sample=False)
    assert [[s.action for s in t.steps] for t in batched] == [[s.action for s in t.steps] for t in serial]
    steps = [s.model_extra for t in batched for s in t.steps]
    assert [e["context_reset"] for e in steps] == [k == 0 for t in batched for k in range(len(t.steps))]
    # a step prefills its reply and its new turn, not the whole chat again
    new = sum(len(e["context_ids"]) + len(e["response_token_ids"]) for e in steps)
    whole = sum(e["prompt_tokens"] for e in steps)
    assert stats["prefilled_tokens"] <= new < whole / 2


def test_packed_episode_scores_equal_the_rollout_and_per_step_scoring(policy):
    torch.manual_seed(0)
    trajs = _rollout(policy, _cfg(), 3)
    samples = build_samples(trajs, torch.ones(len(trajs)), policy.tokenizer)
    assert len(samples) == len(trajs)  # one pass per episode
    pad = policy.tokenizer.pad_token_id
    with torch.no_grad():
        logp, mask, _ = sequence_logprobs(policy.model, samples, pad, torch.device("cpu"))
    for i, t in enumerate(trajs):
        recorded = [lp for s in t.steps for lp in s.model_extra["response_logprobs"]]
        assert logp[i][mask[i].bool()].tolist() == pytest.approx(recorded, abs=1e-4)
    # per-step samples: the same context up to each reply, one reply scored at a time
    per_step = []
    for s in samples:
        starts = [i for i in range(len(s.ids)) if s.action_mask[i] and (i == 0 or not s.action_mask[i - 1])]
        for a in starts:
            b = a
            while b < len(s.ids) and s.action_mask[b]:
                b += 1
            per_step.append(Sample(s.ids[:b], [0] * a + [1] * (b - a), s.advantage))
    adv = torch.tensor([1.0, -0.5, 0.25, 2.0])

    policy.model.requires_grad_(True)  # loaded for inference: nothing is trainable until asked

    def loss_and_grad(batch, advantages):
        policy.model.zero_grad()
        lp, m, _ = sequence_logprobs(policy.model, batch, pad, torch.device("cpu"))
        loss, _ = grpo_loss(lp, lp.detach() - 0.1, lp.detach() + 0.2, advantages, m)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in policy.model.parameters()])

    owner = torch.tensor(
        [next(k for k, s in enumerate(samples) if p.ids == s.ids[: len(p.ids)]) for p in per_step]
    )
    packed_loss, packed_grad = loss_and_grad(samples, adv[: len(samples)])
    step_loss, step_grad = loss_and_grad(per_step, adv[owner])
    policy.model.requires_grad_(False)
    assert packed_loss == pytest.approx(step_loss, rel=1e-4)
    assert torch.allclose(packed_grad, step_grad, rtol=1e-3, atol=1e-6)


def test_a_served_policy_gets_the_same_chat_as_messages():
    """OpenAI-compatible policies take messages: the chat with its replies as the model wrote them."""
    from krill.models.base import Generation

    class Served:
        name = "served"

        def __init__(self):
            self.seen = []

        def generate(self, batch, **kw):
            self.seen.append(batch[0])
            return [Generation(text=f"go to fridge 1 ({len(m)})\n") for m in batch]

    served = Served()
    trajs = run_episodes(LLMActor(served, None, _cfg()), EnvListPool([KitchenEnv()]), ["t0"], max_steps=3)
    last = served.seen[-1]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in last if m["role"] == "assistant"] == [
        "go to fridge 1 (2)",
        "go to fridge 1 (4)",
    ]
    steps = trajs[0].steps
    assert steps[0].observation in last[1]["content"] and trajs[0].task_description in last[1]["content"]
    assert last[3]["content"].startswith(steps[1].observation) and last[5]["content"].startswith(
        steps[2].observation
    )
    assert all("prompt_text" in s.model_extra for s in trajs[0].steps)  # re-scored from text (no ids)


def test_a_rebuilt_chat_starts_a_new_sample():
    def step(ctx, resp, reset):
        return Step(
            observation="o", action="a", context_ids=ctx, context_reset=reset, response_token_ids=resp
        )

    traj = Trajectory(
        task_description="t",
        steps=[step([1, 2], [3], True), step([4], [5, 6], False), step([7, 8], [9], True)],
    )
    samples = build_samples([traj], torch.tensor([1.0]), None)
    assert [(s.ids, s.action_mask) for s in samples] == [
        ([1, 2, 3, 4, 5, 6], [0, 0, 1, 0, 1, 1]),
        ([7, 8, 9], [0, 0, 1]),
    ]


def test_think_format_and_constrained_answers_work_in_a_conversation(policy):
    cfg = _cfg().override({"agent.think": True})
    turns = [
        Turn("You are in the kitchen.", (), "<think>the fridge</think><action>go to fridge 1</action>"),
        Turn("ok", ()),
    ]
    msgs = build_conversation("cool an apple", turns, cfg)
    assert "<think>" in msgs[0]["content"] and msgs[2]["content"].startswith("<think>the fridge</think>")
    assert msgs[3]["content"].endswith("then give your action inside <action> </action>.")
    cfg = _cfg().override({"agent.constrain_actions": True})
    trajs = _rollout(policy, cfg, 2, sample=True)
    steps = [s for t in trajs for s in t.steps]
    assert steps and all(s.valid for s in steps)  # the tiny random model answers only admissible actions
    samples = build_samples(trajs, torch.ones(len(trajs)), policy.tokenizer)
    with torch.no_grad():
        logp, mask, _ = sequence_logprobs(
            policy.model, samples, policy.tokenizer.pad_token_id, torch.device("cpu")
        )
    for i, t in enumerate(trajs):  # the chosen actions' recorded log-probs are what GRPO recomputes
        recorded = [lp for s in t.steps for lp in s.model_extra["response_logprobs"]]
        assert logp[i][mask[i].bool()].tolist() == pytest.approx(recorded, abs=1e-4)
