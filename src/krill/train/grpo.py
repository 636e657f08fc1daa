"""GRPO math as pure functions: group-relative advantages, GiGPO's step-level credit, and the clipped
surrogate + k3 KL loss.

They follow design.md's equations term by term (verl-agent / SkillRL):

    A_i = (R_i − mean_G) / (std_G + ε)                       shared by every action token of trajectory i
    L   = mean_tokens[ max(−A·ρ, −A·clip(ρ, 1−ε_c, 1+ε_c)) + β·KL_k3(π‖π_ref) ]
    (an expert's off-policy action: −A·π/(π+γ) in place of the clipped term, LUFFY)

and, with `rl.advantage: gigpo` (Feng et al. 2025, "Group-in-Group Policy Optimization for LLM Agent
Training"), per step t of trajectory i:

    R_{i,t}   = Σ_{k≥t} γ^{k−t} r_{i,k}                                   discounted return-to-go
    A^S_{i,t} = (R_{i,t} − mean_S) / (std_S + ε)                         S: the steps of i's group that
                                                                          start from the same anchor state
    A_{i,t}   = A^E_i + ω · A^S_{i,t}                                     A^E_i: the episode-level A_i above

No model, no optimizer, no I/O here: the RL loop (`krill.train.rl`) feeds tensors in and the tests
check the numbers by hand.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, group_ids: Tensor, eps: float = 1e-6) -> Tensor:
    """Group-relative advantages: A_i = (R_i − mean_G) / (std_G + ε), per group of rollouts of one task.

    Notation:
        B: tasks in the batch, G: rollouts per task (groups may differ in size).
        R_i: return of trajectory i; mean_G, std_G: mean and (Bessel-corrected) standard deviation of
        the returns in i's group. Returns a tensor shaped like `rewards` (float32).

    >>> group_advantages(torch.tensor([1.0, 0.0, 5.0, 5.0]), torch.tensor([0, 0, 1, 1])).round(decimals=4)
    tensor([ 0.7071, -0.7071,  0.0000,  0.0000])
    """
    rewards = rewards.float()  # [B*G]
    if rewards.shape != group_ids.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and group_ids {tuple(group_ids.shape)} differ")
    _, inverse = torch.unique(group_ids, return_inverse=True)  # [B*G] group index 0..B-1
    n_groups = int(inverse.max().item()) + 1 if inverse.numel() else 0
    count = torch.zeros(n_groups).index_add_(0, inverse, torch.ones_like(rewards))  # [B]
    mean = torch.zeros(n_groups).index_add_(0, inverse, rewards) / count  # [B]
    centred = rewards - mean[inverse]  # [B*G]
    sq = torch.zeros(n_groups).index_add_(0, inverse, centred**2)  # [B]
    std = torch.sqrt(sq / (count - 1).clamp(min=1))  # [B] unbiased, as torch.std (TRL, verl)
    adv = centred / (std[inverse] + eps)  # [B*G]
    # A group of one has no baseline, and a group whose returns are all equal (all won or all lost)
    # says nothing about which trajectory was better: both get advantage 0 so they add no gradient
    # (TRL zeroes unscorable rows the same way). `centred` is exactly 0 for equal returns already;
    # the explicit mask also guards against float noise in the mean.
    informative = (count[inverse] > 1) & (std[inverse] > 0)  # [B*G]
    return torch.where(informative, adv, torch.zeros_like(adv))


def discounted_returns(rewards: list[float], gamma: float) -> list[float]:
    """R_t = Σ_{k≥t} γ^{k−t} r_k: each step's discounted return-to-go.

    >>> discounted_returns([0.0, 0.0, 1.0], 0.5)
    [0.25, 0.5, 1.0]
    """
    out, acc = [0.0] * len(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out


def anchor_state(observation: str) -> str:
    """GiGPO's anchor-state key: the observation text the step started from, case and spacing normalised."""
    return " ".join(observation.lower().split())


def step_advantages(
    returns: list[list[float]], anchors: list[list[str]], group_ids: list[int], eps: float = 1e-6
) -> list[list[float]]:
    """A^S_{i,t}: R_{i,t} normalised within its anchor group S = the steps (j, k) of i's episode group
    with anchor_{j,k} = anchor_{i,t} (the same trajectory may visit a state twice).

    A state seen once in its group, or whose returns are all equal, gets 0: there is nothing to compare.
    `returns[i][t]` and `anchors[i][t]` are per trajectory i and step t; std is Bessel-corrected, as
    in `group_advantages`.
    """
    members: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for i, (g, keys) in enumerate(zip(group_ids, anchors, strict=True)):
        for t, key in enumerate(keys):
            members.setdefault((g, key), []).append((i, t))
    out = [[0.0] * len(r) for r in returns]
    for steps in members.values():
        vals = torch.tensor([returns[i][t] for i, t in steps], dtype=torch.float64)  # [|S|]
        if len(steps) < 2 or bool((vals == vals[0]).all()):
            continue
        adv = (vals - vals.mean()) / (vals.std() + eps)  # [|S|]
        for (i, t), a in zip(steps, adv.tolist(), strict=True):
            out[i][t] = a
    return out


def gigpo_advantages(episode_adv: Tensor, step_adv: list[list[float]], omega: float) -> list[list[float]]:
    """A_{i,t} = A^E_i + ω · A^S_{i,t}; with ω = 0 every step of i carries GRPO's A_i exactly."""
    return [[a + omega * s for s in steps] for a, steps in zip(episode_adv.tolist(), step_adv, strict=True)]


def zero_variance_groups(rewards: Tensor, group_ids: Tensor) -> int:
    """How many groups have a single member or all-equal returns (they contribute no gradient)."""
    n = 0
    for g in torch.unique(group_ids):
        r = rewards[group_ids == g]
        n += int(r.numel() < 2 or bool((r == r[0]).all()))
    return n


class GRPOStats(NamedTuple):
    """Diagnostics of one `grpo_loss` call (detached scalars)."""

    loss: Tensor
    policy_loss: Tensor  # masked mean of the clipped surrogate
    kl: Tensor  # masked mean k3 KL to the reference policy
    clip_frac: Tensor  # fraction of tokens where the clipped branch was taken
    approx_kl: Tensor  # KL(old ‖ new) estimate: how far this update moved from the rollout policy
    ratio_mean: Tensor
    tokens: Tensor


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of `x` over positions where `mask` is 1 (0 when the mask is empty)."""
    # where(), not x * mask: garbage in padded positions (inf, NaN) must not leak into the sum
    return torch.where(mask.bool(), x, torch.zeros_like(x)).sum() / mask.sum().clamp(min=1)


def grpo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    ref_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_ratio: float = 0.2,
    kl_coef: float = 0.01,
    *,
    off_policy: Tensor | None = None,
    shaping_gamma: float = 0.1,
) -> tuple[Tensor, GRPOStats]:
    """Clipped-surrogate GRPO loss with a k3 KL penalty to the reference, as a masked token mean.

    Notation:
        N: samples (one agent step each: the prompt at that step → the response tokens; or, in
        conversation mode, one episode each: its chat, with T spanning its replies and the turns between),
        T: response tokens (padded). logprobs: log π_θ(a_t|s) [N, T] (with grad);
        old_logprobs: log π_old at rollout time [N, T]; ref_logprobs: log π_ref (adapter off) [N, T];
        advantages: A of each sample's trajectory [N] or per token [N, T]; mask: 1 on the policy's own tokens [N, T].
        In choice mode a "token" is one decision and logprobs are log π_T(a|s) over its admissible actions [S, 1].
        off_policy: 1 where an expert chose the action [N, T] (LUFFY, arXiv:2504.14945): it has no behaviour
        log-prob to divide by, so its term is −A·f(π_θ) with f(π) = π/(π+γ), unclipped, which keeps the
        gradient large where the policy gives the expert's action little mass.
    """
    mask = mask.to(logprobs.dtype)  # [N, T]
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages  # [N, 1] or [N, T]
    log_ratio = logprobs - old_logprobs  # [N, T]
    ratio = torch.exp(log_ratio)  # [N, T]  ρ = π_θ / π_old
    pg_loss1 = -adv * ratio  # [N, T]
    pg_loss2 = -adv * torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)  # [N, T]
    pg_loss = torch.max(pg_loss1, pg_loss2)  # [N, T]  = −min(ρA, clip(ρ)A)
    if off_policy is not None:
        prob = torch.exp(logprobs)  # [N, T]  π_θ(a|s)
        shaped = -adv * prob / (prob + shaping_gamma)  # [N, T]  −A·f(π), f(π) = π/(π+γ)
        pg_loss = torch.where(off_policy.bool(), shaped, pg_loss)  # [N, T]
    # k3 estimator of KL(π_θ ‖ π_ref), unbiased and always ≥ 0: http://joschu.net/blog/kl-approx.html
    ref_log_ratio = ref_logprobs - logprobs  # [N, T]
    kl = torch.exp(ref_log_ratio) - ref_log_ratio - 1.0  # [N, T]
    loss = masked_mean(pg_loss + kl_coef * kl, mask)  # scalar

    with torch.no_grad():
        stats = GRPOStats(
            loss=loss.detach(),
            policy_loss=masked_mean(pg_loss, mask),
            kl=masked_mean(kl, mask),
            clip_frac=masked_mean((pg_loss2 > pg_loss1).to(mask.dtype), mask),
            approx_kl=masked_mean((ratio - 1.0) - log_ratio, mask),  # k3 of KL(old ‖ new)
            ratio_mean=masked_mean(ratio, mask),
            tokens=mask.sum(),
        )
    return loss, stats
