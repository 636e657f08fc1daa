"""GiGPO's step-level credit (rl.advantage=gigpo), checked against numbers worked by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from krill.schema import Step, Trajectory
from krill.train.grpo import (
    anchor_state,
    discounted_returns,
    gigpo_advantages,
    group_advantages,
    step_advantages,
)
from krill.train.samples import build_samples, gigpo_step_advantages

H = 0.5**0.5  # a pair of different values z-scores to ±1/√2 (Bessel-corrected std)


def test_discounted_returns_by_hand():
    assert discounted_returns([0.0, 0.0, 1.0], 0.9) == pytest.approx([0.81, 0.9, 1.0])
    assert discounted_returns([1.0, -0.1, 2.0], 1.0) == pytest.approx([2.9, 1.9, 2.0])
    assert discounted_returns([], 0.9) == []


def test_anchor_states_ignore_case_and_spacing():
    assert anchor_state("You arrive at  Fridge 1.\n") == anchor_state("you arrive at fridge 1.")
    assert anchor_state("You arrive at fridge 1.") != anchor_state("You arrive at fridge 2.")


def test_a_state_shared_at_different_steps_and_a_state_seen_once():
    # group 0: τ1 sees A, B, C and wins at its 3rd step; τ2 sees A, C and loses. γ = 0.5:
    #   τ1: R = [0.25, 0.5, 1.0]; τ2: R = [0, 0]
    #   anchor A: {0.25 (τ1, t=0), 0 (τ2, t=0)} → ±1/√2;  C: {1.0 (τ1, t=2), 0 (τ2, t=1)} → ±1/√2
    #   B: only τ1 → 0.  Group 1 (τ3) also sees A, but groups never mix: alone, 0.
    returns = [discounted_returns(r, 0.5) for r in ([0, 0, 1.0], [0, 0.0], [0.0])]
    anchors = [["a", "b", "c"], ["a", "c"], ["a"]]
    got = step_advantages(returns, anchors, [0, 0, 1])
    assert got[0] == pytest.approx([H, 0.0, H], abs=1e-5)
    assert got[1] == pytest.approx([-H, -H], abs=1e-5)
    assert got[2] == [0.0]
    # A = A^E + ω·A^S with A^E = ±1/√2 (τ1 won, τ2 lost) and ω = 0.5
    a_e = group_advantages(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0, 0, 1]))
    final = gigpo_advantages(a_e, got, 0.5)
    assert final[0] == pytest.approx([1.5 * H, H, 1.5 * H], abs=1e-5)
    assert final[1] == pytest.approx([-1.5 * H, -1.5 * H], abs=1e-5)


def test_discounting_credits_the_faster_win_that_grpo_cannot_tell_apart():
    # both win (episode advantage 0): τ1 in 2 steps, τ2 in 4, from the same first state
    rewards = [[0.0, 1.0], [0.0, 0.0, 0.0, 1.0]]
    anchors = [["start", "w"], ["start", "x", "y", "z"]]
    undiscounted = step_advantages([discounted_returns(r, 1.0) for r in rewards], anchors, [0, 0])
    assert undiscounted == [[0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]  # equal returns: nothing to learn
    discounted = step_advantages([discounted_returns(r, 0.5) for r in rewards], anchors, [0, 0])
    assert discounted[0][0] == pytest.approx(H, abs=1e-5) and discounted[1][0] == pytest.approx(-H, abs=1e-5)


def _chat_traj(observations: list[str], rewards: list[float], first_id: int) -> Trajectory:
    steps = [Step(observation=o, action="a", reward=r, context_ids=[first_id + 10 * t], context_reset=t == 0,
                  response_token_ids=[first_id + 10 * t + 1]) for t, (o, r) in enumerate(zip(observations, rewards, strict=True))]  # fmt: skip
    return Trajectory(task_description="t", steps=steps, total_reward=sum(rewards), success=rewards[-1] > 0)


def test_omega_zero_is_grpo_exactly_and_steps_carry_their_own_advantage():
    trajs = [_chat_traj(["A", "B", "C"], [0, 0, 1.0], 100), _chat_traj(["A", "C"], [0, 0.0], 200)]
    group_ids = torch.tensor([0, 0])
    adv = group_advantages(torch.tensor([t.total_reward for t in trajs]), group_ids)
    rl = SimpleNamespace(invalid_action_penalty=0.1, gamma=0.5, step_advantage_weight=0.0)
    grpo = build_samples(trajs, adv, None)
    gigpo0 = build_samples(trajs, adv, None, gigpo_step_advantages(trajs, adv, group_ids, rl))

    def scored(samples):  # the advantage on each action token (the loss never reads the others)
        return [
            [a for a, m in zip(s.advantage_row(len(s)), s.action_mask, strict=True) if m] for s in samples
        ]

    assert scored(gigpo0) == scored(grpo) and [s.ids for s in gigpo0] == [s.ids for s in grpo]
    rl.step_advantage_weight = 1.0
    (s1, s2) = build_samples(trajs, adv, None, gigpo_step_advantages(trajs, adv, group_ids, rl))
    # τ1's three replies: A^E + A^S = H + H, H + 0, H + H; context tokens carry 0 (they are masked anyway)
    assert s1.ids == [100, 101, 110, 111, 120, 121]
    assert s1.token_advantages == pytest.approx([0, 2 * H, 0, H, 0, 2 * H], abs=1e-5)
    assert s2.token_advantages == pytest.approx([0, -2 * H, 0, -2 * H], abs=1e-5)
