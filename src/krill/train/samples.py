"""GRPO's training samples: trajectories → token sequences with an action mask and an advantage.

Window mode (`agent.context: window`): every LLM step is one sample, its prompt → its response.
Conversation mode: a whole episode is one sample (its contexts and replies as the decoder saw them,
built by appending, never re-tokenized), every reply's tokens carrying the trajectory's A_i.
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

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def scored_span(self) -> int:
        """Positions from the first action token to the end: the logits a forward pass must keep."""
        return len(self.ids) - self.action_mask.index(1) if 1 in self.action_mask else 0


def shaped_rewards(trajs: list[Trajectory], penalty: float) -> torch.Tensor:
    """R_i = episode return − penalty × number of invalid actions."""
    return torch.tensor([t.total_reward - penalty * t.num_invalid for t in trajs], dtype=torch.float32)


def build_samples(trajs: list[Trajectory], advantages: torch.Tensor, tokenizer: Any) -> list[Sample]:
    """Samples of every trajectory with A_i ≠ 0: one per episode segment when its steps recorded
    appended context ids (conversation mode), else one per step from its prompt text."""
    out = []
    for traj, adv in zip(trajs, advantages.tolist(), strict=True):
        if adv != 0.0:
            out.extend(trajectory_samples(traj, adv, tokenizer))
    return out


def trajectory_samples(traj: Trajectory, advantage: float, tokenizer: Any) -> list[Sample]:
    """The sequences of one trajectory: its steps' contexts followed by their responses."""
    out: list[Sample] = []
    ids: list[int] = []
    mask: list[int] = []
    for step in traj.steps:
        extra = step.model_extra or {}
        resp = list(extra.get("response_token_ids") or [])
        if extra.get("error"):
            continue
        if "context_ids" in extra:  # conversation: the context grows by appending, until a rebuild
            if extra.get("context_reset") and ids:
                out.append(Sample(ids, mask, advantage))
                ids, mask = [], []
            context = list(extra["context_ids"])
        elif resp and extra.get("prompt_text"):  # window (or a remote server): one prompt per step
            context = tokenizer(extra["prompt_text"], add_special_tokens=False)["input_ids"]
            out.append(Sample([*context, *resp], [0] * len(context) + [1] * len(resp), advantage))
            continue
        else:
            continue
        ids += [*context, *resp]
        mask += [0] * len(context) + [1] * len(resp)
    if ids:
        out.append(Sample(ids, mask, advantage))
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
