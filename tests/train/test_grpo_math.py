"""GRPO loss and advantages against numbers worked out by hand (torchtune test_ppo_loss style)."""

import math

import pytest
import torch

from krill.train.grpo import group_advantages, grpo_loss, masked_mean, zero_variance_groups

E = math.e


def _loss(delta_old, delta_ref, adv, *, clip=0.2, beta=0.0, T=3):
    """logprobs = 0 everywhere; old = logprobs − delta_old (so ratio = e^delta_old); ref = logprobs + delta_ref."""
    logp = torch.zeros(1, T, requires_grad=True)
    old = torch.full((1, T), -float(delta_old))
    ref = torch.full((1, T), float(delta_ref))
    return logp, *grpo_loss(
        logp, old, ref, torch.tensor([adv]), torch.ones(1, T), clip_ratio=clip, kl_coef=beta
    )


def test_ratio_one_gives_minus_advantage_and_zero_kl():
    # ratio is [1, 1, 1], nothing clipped, policy == reference → KL exactly 0
    _, loss, st = _loss(0.0, 0.0, 2.0, beta=0.5)
    assert loss.item() == pytest.approx(-2.0)
    assert st.kl.item() == 0.0 and st.clip_frac.item() == 0.0 and st.approx_kl.item() == 0.0


def test_clipping_active_for_positive_advantage_above_range():
    # ratio is [e, e, e]; with A = +1 the clipped ratio becomes 1.2 and max(−e, −1.2) = −1.2
    logp, loss, st = _loss(1.0, 0.0, 1.0)
    assert loss.item() == pytest.approx(-1.2)
    assert st.clip_frac.item() == 1.0
    assert st.ratio_mean.item() == pytest.approx(E, rel=1e-5)
    loss.backward()  # clipped branch is constant in θ: no gradient flows
    assert torch.all(logp.grad == 0)


def test_clipping_inactive_for_negative_advantage_above_range():
    # ratio e, A = −1: max(e, 1.2) = e (the pessimistic unclipped term), gradient −A·ρ/T per token
    logp, loss, st = _loss(1.0, 0.0, -1.0)
    assert loss.item() == pytest.approx(E, rel=1e-5)
    assert st.clip_frac.item() == 0.0
    loss.backward()
    assert logp.grad[0, 0].item() == pytest.approx(E / 3, rel=1e-5)


def test_ratio_below_range():
    # ratio 1/e ≈ 0.368: A = −1 → max(0.368, 0.8) = 0.8 (clipped); A = +1 → max(−0.368, −0.8) = −0.368
    _, loss_neg, st_neg = _loss(-1.0, 0.0, -1.0)
    assert loss_neg.item() == pytest.approx(0.8)
    assert st_neg.clip_frac.item() == 1.0
    _, loss_pos, st_pos = _loss(-1.0, 0.0, 1.0)
    assert loss_pos.item() == pytest.approx(-1 / E, rel=1e-5)
    assert st_pos.clip_frac.item() == 0.0


def test_k3_kl_value_and_coefficient():
    # ref − logp = ln 2 → k3 = e^{ln 2} − ln 2 − 1 = 1 − ln 2 ≈ 0.30685; loss = −A + β·k3
    _, loss, st = _loss(0.0, math.log(2), 1.0, beta=0.1)
    assert st.kl.item() == pytest.approx(1 - math.log(2), rel=1e-5)
    assert loss.item() == pytest.approx(-1.0 + 0.1 * (1 - math.log(2)), rel=1e-5)
    assert st.policy_loss.item() == pytest.approx(-1.0)


def test_mask_excludes_padding_and_per_token_mean():
    logp = torch.tensor([[0.0, 0.0, 50.0], [0.0, 50.0, 50.0]])  # padded positions hold garbage
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    zeros = torch.zeros(2, 3)
    old = torch.where(mask.bool(), zeros, torch.full((2, 3), -99.0))
    loss, st = grpo_loss(logp, old, logp, torch.tensor([1.0, -2.0]), mask)
    # three real tokens, ratio 1: (−1 −1 +2) / 3
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert st.tokens.item() == 3
    assert masked_mean(torch.ones(2, 3), torch.zeros(2, 3)).item() == 0.0


def test_group_advantages_hand_values():
    r = torch.tensor([1.0, 3.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0])
    g = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    a = group_advantages(r, g, eps=0.0)
    # group 0: mean 2, std (unbiased) sqrt(2) → ∓1/√2; group 1: all equal → 0
    assert a[:2].tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)])
    assert a[2:4].tolist() == [0.0, 0.0]
    # group 2: mean 2.5, std = sqrt((7.5² + 3·2.5²)/3) = 5
    assert a[4:].tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5])
    assert zero_variance_groups(r, g) == 1


def test_group_advantages_edge_cases():
    # a group of one has no baseline → 0; unsorted / non-contiguous ids work
    a = group_advantages(torch.tensor([5.0, 1.0, 2.0, 9.0]), torch.tensor([7, 3, 7, 42]))
    assert a[1].item() == 0.0 and a[3].item() == 0.0
    assert a[0].item() > 0 > a[2].item()
    assert zero_variance_groups(torch.tensor([5.0, 1.0, 2.0, 9.0]), torch.tensor([7, 3, 7, 42])) == 2
    assert group_advantages(torch.tensor([]), torch.tensor([], dtype=torch.long)).numel() == 0
    with pytest.raises(ValueError, match="differ"):
        group_advantages(torch.ones(3), torch.zeros(2, dtype=torch.long))


def test_advantages_are_invariant_to_reward_shift_and_scale():
    r = torch.tensor([0.0, 10.0, 10.0, -0.3])
    g = torch.tensor([0, 0, 0, 0])
    assert torch.allclose(group_advantages(r, g), group_advantages(3 * r + 7, g), atol=1e-5)
