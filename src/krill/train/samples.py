"""GRPO's training samples: trajectories → token sequences with an action mask and an advantage.

Window mode (`agent.context: window`): every LLM step is one sample, its prompt → its response.
Conversation mode: a whole episode is one sample (its contexts and replies as the decoder saw them,
built by appending, never re-tokenized), every reply's tokens carrying the trajectory's A_i.
With GiGPO (`rl.advantage: gigpo`) each step's reply carries its own A_{i,t} instead of A_i.
Log-probs come from `krill.models.logprobs`, the one implementation rollout scoring and SFT share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from krill.models.logprobs import left_pad, trailing_logprobs
from krill.schema import Trajectory


@dataclass
class Sample:
    """Token ids the policy saw and wrote, scored in one pass; `action_mask` 1 on its own tokens.

    Window mode: one agent step (prompt → response). Conversation mode: a whole episode (its
    contexts and replies as the decoder saw them), or the part since its chat was last cut.
    Every action token carries `advantage`, the trajectory's A_i.
    """

    ids: list[int]
    action_mask: list[int]
    advantage: float
    token_advantages: list[float] | None = None  # per position (GiGPO: each reply its step's A_{i,t})

    def __len__(self) -> int:
        return len(self.ids)

    def advantage_row(self, width: int) -> list[float]:
        """The advantage of the last `width` positions (left-padded with 0), as `sequence_logprobs` scores them."""
        per = self.token_advantages or [self.advantage] * len(self.ids)
        return ([0.0] * width + per)[-width:]

    @property
    def scored_span(self) -> int:
        """Positions from the first action token to the end: the logits a forward pass must keep."""
        return len(self.ids) - self.action_mask.index(1) if 1 in self.action_mask else 0


def shaped_rewards(trajs: list[Trajectory], penalty: float) -> torch.Tensor:
    """R_i = episode return − penalty × number of invalid actions."""
    return torch.tensor([t.total_reward - penalty * t.num_invalid for t in trajs], dtype=torch.float32)


def step_rewards(traj: Trajectory, penalty: float) -> list[float]:
    """r_t = the step's reward − penalty if its action was invalid (they sum to the shaped R_i)."""
    return [s.reward - penalty * (s.valid is False) for s in traj.steps]


def gigpo_step_advantages(
    trajs: list[Trajectory], episode_adv: torch.Tensor, group_ids: torch.Tensor, rl: Any
) -> list[list[float]]:
    """GiGPO's A_{i,t} = A^E_i + ω·A^S_{i,t} for every step (`krill.train.grpo`), from `rl.gamma`,
    `rl.step_advantage_weight` and the invalid-action penalty."""
    from krill.train.grpo import anchor_state, discounted_returns, gigpo_advantages, step_advantages

    returns = [discounted_returns(step_rewards(t, rl.invalid_action_penalty), rl.gamma) for t in trajs]
    anchors = [[anchor_state(s.observation) for s in t.steps] for t in trajs]
    a_step = step_advantages(returns, anchors, group_ids.tolist())
    return gigpo_advantages(episode_adv, a_step, rl.step_advantage_weight)


def build_samples(
    trajs: list[Trajectory],
    advantages: torch.Tensor,
    tokenizer: Any,
    step_advantages: list[list[float]] | None = None,
) -> list[Sample]:
    """Samples of every trajectory with a non-zero advantage (A_i, or any A_{i,t} when per-step
    `step_advantages` are given): one per episode segment when its steps recorded appended context
    ids (conversation mode), else one per step from its prompt text."""
    out = []
    for i, (traj, adv) in enumerate(zip(trajs, advantages.tolist(), strict=True)):
        per_step = step_advantages[i] if step_advantages is not None else None
        if adv != 0.0 or any(per_step or ()):
            out.extend(trajectory_samples(traj, adv, tokenizer, per_step))
    return out


def trajectory_samples(
    traj: Trajectory, advantage: float, tokenizer: Any, step_advantages: list[float] | None = None
) -> list[Sample]:
    """The sequences of one trajectory: its steps' contexts followed by their responses, each
    response's tokens carrying its step's advantage (`step_advantages[t]`, else `advantage`)."""
    out: list[Sample] = []
    ids: list[int] = []
    mask: list[int] = []
    advs: list[float] = []

    def sample(ids: list[int], mask: list[int], advs: list[float]) -> Sample:
        return Sample(ids, mask, advantage, advs if step_advantages is not None else None)

    for t, step in enumerate(traj.steps):
        a_t = step_advantages[t] if step_advantages is not None else advantage
        extra = step.model_extra or {}
        resp = list(extra.get("response_token_ids") or [])
        if extra.get("error"):
            continue
        if "context_ids" in extra:  # conversation: the context grows by appending, until a rebuild
            if extra.get("context_reset") and ids:
                out.append(sample(ids, mask, advs))
                ids, mask, advs = [], [], []
            context = list(extra["context_ids"])
        elif resp and extra.get("prompt_text"):  # window (or a remote server): one prompt per step
            context = tokenizer(extra["prompt_text"], add_special_tokens=False)["input_ids"]
            out.append(Sample([*context, *resp], [0] * len(context) + [1] * len(resp), a_t))
            continue
        else:
            continue
        ids += [*context, *resp]
        mask += [0] * len(context) + [1] * len(resp)
        advs += [0.0] * len(context) + [a_t] * len(resp)
    if ids:
        out.append(sample(ids, mask, advs))
    return [s for s in out if 1 in s.action_mask]


def token_budget_batches(samples: list[Sample], budget: int) -> list[list[Sample]]:
    """Pack samples (sorted by length) into micro-batches with count × longest ≤ budget tokens.

    A sample longer than the budget gets a micro-batch of its own (one sequence must always fit).
    """
    batches: list[list[Sample]] = []
    cur: list[Sample] = []
    for s in sorted(samples, key=len):
        if cur and (len(cur) + 1) * len(s) > budget:
            batches.append(cur)
            cur = []
        cur.append(s)
    if cur:
        batches.append(cur)
    return batches


def sequence_logprobs(model: Any, batch: list[Sample], pad_id: int, device: Any, *, entropy: bool = False):
    """Log-probs of each sample's tokens from its first action token on: (logp [b, R], mask [b, R],
    entropy [b, R] | None); `mask` is the samples' action mask over those positions.

    Left padding aligns every row's end, so only the last R positions are scored (R = the longest
    span from a first action token to the end: the response in window mode, the episode's replies
    and the observations between them in conversation mode).
    """
    ids, attn = left_pad([s.ids for s in batch], pad_id, device)  # [b, L]
    R = max(s.scored_span for s in batch)
    logp, ent = trailing_logprobs(model, ids, attn, R, entropy=entropy)  # [b, R]
    mask = torch.tensor([([0] * R + s.action_mask)[-R:] for s in batch], device=device).float()  # [b, R]
    return logp, mask, ent
