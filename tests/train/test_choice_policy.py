"""GRPO trains the choice policy the decoder samples from: π_T(a|s) = softmax over the admissible
actions of their sequence scores at temperature T (GLAM / TWOSOME), scored teacher-forced in the update."""

import math
import sys
from pathlib import Path

import pytest
import torch

from krill.agent.actors import LLMActor
from krill.agent.rollout import run_episodes
from krill.config import load_config
from krill.models.choices import ChoiceTrie, choice_logprobs, choice_scores
from krill.models.local import LocalPolicy
from krill.models.tiny import build_tiny_model
from krill.schema import Step, Trajectory
from krill.train.checkpoint import make_trainable
from krill.train.grpo import grpo_loss
from krill.train.samples import build_samples, choice_step_logprobs
from krill.train.setup import make_accelerator
from krill.train.update import grpo_update

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
from agent_fakes import EnvListPool, KitchenEnv  # noqa: E402


def _cfg(*extra):
    return load_config(
        preset="tiny", overrides=["model.policy.device=cpu", "agent.constrain_actions=true", *extra]
    )


def test_three_choice_step_gradient_is_what_the_equations_say():
    # scores s = (1, 0, -1), the first action taken with A = 2, at T = 1 and T = 0.5.
    # L = −A·ρ, ρ = π_T(a0)/π_old(a0) = 1 at the start, so ∂L/∂s_j = −A·(1[j=0] − π_T(j)) / T.
    for T in (1.0, 0.5):
        scores = torch.tensor([1.0, 0.0, -1.0], requires_grad=True)
        logp = choice_logprobs(scores, T)[0].reshape(1, 1)
        loss, st = grpo_loss(
            logp, logp.detach(), logp.detach(), torch.tensor([2.0]), torch.ones(1, 1), 0.2, 0.0
        )
        loss.backward()
        z = [math.exp(s / T) for s in (1.0, 0.0, -1.0)]
        pi = [v / sum(z) for v in z]
        expected = [-2.0 * ((j == 0) - pi[j]) / T for j in range(3)]
        assert scores.grad.tolist() == pytest.approx(expected, abs=1e-6)
        assert st.ratio_mean.item() == 1.0  # π_old is the policy itself, detached


def test_a_step_with_one_admissible_action_carries_no_loss():
    scores = torch.tensor([-3.7], requires_grad=True)
    logp = choice_logprobs(scores, 1.0)
    assert logp.item() == 0.0  # π(a|s) = 1: nothing was decided
    logp.sum().backward()
    assert scores.grad.tolist() == [0.0]
    # and the sample builder does not even make a decision of it: no samples, the update is skipped
    cfg = _cfg()
    model, tok = build_tiny_model(0)
    model = make_trainable(model, cfg.lora)
    step = Step(
        observation="o",
        action="look",
        context_ids=[5, 6, 7],
        context_reset=True,
        response_token_ids=[8, tok.eos_token_id],
        choices=["look"],
        choice_index=0,
        choice_logprob=0.0,
    )
    traj = Trajectory(task_description="t", steps=[step, step.model_copy(update={"context_reset": False})],
                      total_reward=10.0, success=True)  # fmt: skip
    samples = build_samples([traj], torch.tensor([1.0]), tok, choice=True)
    assert samples == []
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    assert (
        grpo_update(model, opt, samples, cfg, make_accelerator(cfg), tok.pad_token_id)["update/skipped"]
        == 1.0
    )


def test_choice_scores_sum_the_tokens_of_each_path_then_end_of_turn():
    # vocabulary of 4; choices [1], [1, 2], [3]; end-of-turn = 0. Log-probs written by hand.
    trie = ChoiceTrie.build([[1], [1, 2], [3]])
    first = torch.log(torch.tensor([0.1, 0.5, 0.1, 0.3]))  # after the prompt
    nodes = torch.log(torch.tensor([[0.4, 0.1, 0.4, 0.1],  # after "1"
                                    [0.7, 0.1, 0.1, 0.1],  # after "1 2"
                                    [0.9, 0.05, 0.03, 0.02]]))  # after "3"  # fmt: skip
    sums = choice_scores(trie, first, nodes, end=0).exp().tolist()
    assert sums == pytest.approx([0.5 * 0.4, 0.5 * 0.4 * 0.7, 0.3 * 0.9])
    means = choice_scores(trie, first, nodes, end=0, mode="mean").tolist()
    assert means == pytest.approx(
        [math.log(0.5 * 0.4) / 2, math.log(0.5 * 0.4 * 0.7) / 3, math.log(0.3 * 0.9) / 2]
    )


@pytest.mark.parametrize("context", ["window", "conversation"])
def test_recorded_choice_logprobs_equal_what_the_update_recomputes(context):
    cfg = _cfg(f"agent.context={context}", "rl.temperature=0.7", "rl.max_steps=4")
    policy = LocalPolicy("tiny", device="cpu", batch_size=4)
    policy.model = make_trainable(policy.model, cfg.lora)
    actor = LLMActor(policy, None, cfg, cfg.sampling("rollout"), want_logprobs=True, seed=3)
    pool = EnvListPool([KitchenEnv() for _ in range(3)])
    trajs = run_episodes(actor, pool, ["t0", "t1", "t2"], max_steps=4)
    samples = build_samples(trajs, torch.tensor([1.0, -1.0, 0.5]), policy.tokenizer, choice=True)
    decisions = [c for s in samples for c in s.choice_steps]
    assert len(decisions) == 12 and all(c.recorded is not None for c in decisions)
    with torch.no_grad():
        got = choice_step_logprobs(policy.model, samples, policy.tokenizer.pad_token_id,
                                   policy.tokenizer.eos_token_id, 0.7)  # fmt: skip
    assert got.logp.tolist() == pytest.approx(got.recorded.tolist(), abs=1e-5)
    assert got.advantages.tolist() == [1.0] * 4 + [-1.0] * 4 + [0.5] * 4


def test_update_on_choices_starts_at_ratio_one_and_moves_the_taken_action(tmp_path):
    cfg = _cfg("agent.context=conversation", "rl.temperature=1.0", "rl.learning_rate=0.05", "rl.kl_coef=0")
    policy = LocalPolicy("tiny", device="cpu", batch_size=4)
    policy.model = make_trainable(policy.model, cfg.lora)
    actor = LLMActor(policy, None, cfg, cfg.sampling("rollout"), want_logprobs=True, seed=1)
    trajs = run_episodes(actor, EnvListPool([KitchenEnv() for _ in range(2)]), ["t0", "t1"], max_steps=3)
    samples = build_samples(trajs, torch.tensor([1.0, 0.0]), policy.tokenizer, choice=True)
    tok = policy.tokenizer

    def taken_logp():
        with torch.no_grad():
            return choice_step_logprobs(policy.model, samples, tok.pad_token_id, tok.eos_token_id, 1.0).logp

    before = taken_logp()
    opt = torch.optim.AdamW([p for p in policy.model.parameters() if p.requires_grad], lr=0.05)
    stats = grpo_update(policy.model, opt, samples, cfg, make_accelerator(cfg), tok.pad_token_id,
                        end_of_turn=tok.eos_token_id)  # fmt: skip
    assert stats["update/skipped"] == 0.0 and stats["decisions/trained"] == 3.0
    assert stats["losses/ratio"] == 1.0  # one pass: π_old is the policy itself
    assert stats["choices/recorded_gap"] < 1e-5  # the sampled policy is the trained policy
    assert taken_logp().sum() > before.sum()  # A > 0: the actions taken became more likely


def test_no_reference_pass_at_kl_zero_and_no_old_pass_with_one_epoch(monkeypatch):
    import krill.train.update as update

    calls = []
    real = update.score_batch
    monkeypatch.setattr(
        update, "score_batch", lambda *a, **k: calls.append(k.get("entropy")) or real(*a, **k)
    )
    cfg = _cfg("agent.context=conversation", "rl.kl_coef=0")
    policy = LocalPolicy("tiny", device="cpu", batch_size=2)
    policy.model = make_trainable(policy.model, cfg.lora)
    actor = LLMActor(policy, None, cfg, cfg.sampling("rollout"), want_logprobs=True, seed=1)
    trajs = run_episodes(actor, EnvListPool([KitchenEnv()]), ["t0"], max_steps=2)
    samples = build_samples(trajs, torch.tensor([1.0]), policy.tokenizer, choice=True)
    tok = policy.tokenizer
    opt = torch.optim.AdamW([p for p in policy.model.parameters() if p.requires_grad], lr=1e-3)

    def disabled():
        raise AssertionError("reference pass at kl_coef 0")

    monkeypatch.setattr(type(policy.model), "disable_adapter", lambda self: disabled(), raising=False)
    stats = grpo_update(policy.model, opt, samples, cfg, make_accelerator(cfg), tok.pad_token_id,
                        end_of_turn=tok.eos_token_id)  # fmt: skip
    assert calls == [True]  # one scoring pass: the one that trains
    assert stats["losses/kl"] == 0.0
    calls.clear()
    cfg2 = cfg.override({"rl.kl_coef": 0.01, "rl.ppo_epochs": 2})
    monkeypatch.undo()
    monkeypatch.setattr(
        update, "score_batch", lambda *a, **k: calls.append(k.get("entropy")) or real(*a, **k)
    )
    grpo_update(
        policy.model,
        opt,
        samples,
        cfg2,
        make_accelerator(cfg2),
        tok.pad_token_id,
        end_of_turn=tok.eos_token_id,
    )
    assert calls == [None, None, True, True]  # π_old and π_ref once each, then two training passes
