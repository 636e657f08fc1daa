"""Teacher-forced log-probs of the trailing tokens of left-padded rows: the ONE implementation that
rollout re-scoring (`LocalPolicy.score`), GRPO (`krill.train.samples.sequence_logprobs`) and SFT's
cross-entropy (`krill.train.sft.summed_token_ce`) all call, so the three can never disagree.

Convention (as in decoding): log p(token_t) = log_softmax(raw logits at t-1)[token_t], temperature 1.
Left padding aligns every row's end, so only the last `span + 1` positions need logits
(`logits_to_keep`): [b, span, V] instead of [b, L, V], the difference between MBs and GBs for a
49k vocabulary.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def trailing_logprobs(
    model: Any, input_ids: Tensor, attention_mask: Tensor, span: int, *, entropy: bool = False
) -> tuple[Tensor, Tensor | None]:
    """(log p of each of the last `span` tokens of every row [b, span], their next-token entropies
    [b, span] or None). Rows are left-padded (`attention_mask` 0 on the padding)."""
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # [b, L]
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, logits_to_keep=span + 1
    )
    logits = out.logits[:, :-1].float()  # [b, span, V]: position t predicts token t of the span
    targets = input_ids[:, input_ids.size(1) - span :]  # [b, span]
    # log p(token) = logit(token) − logsumexp(logits): no second [b, span, V] tensor
    logp = logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logp, token_entropy(logits.detach()) if entropy else None


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy of each next-token distribution: logits [..., V] → [...] (nats)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def left_pad(rows: list[list[int]], pad_id: int, device: Any = None) -> tuple[Tensor, Tensor]:
    """(input_ids, attention_mask) [b, L] of token rows padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask
