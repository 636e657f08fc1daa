"""The test oracle for log-probs: a response re-scored teacher-forced, one row at a time.

`LocalPolicy.generate` records each sampled token's log-prob as it decodes (batched, KV-cached,
prefix-reused, choice-constrained); the tests check those against this plain recomputation, which
shares none of that machinery. krill itself never calls it: training scores through `krill.train`.
"""

from __future__ import annotations

import torch

from krill.models.local import LocalPolicy, eval_mode
from krill.models.logprobs import left_pad, trailing_logprobs


def teacher_forced_logprobs(
    policy: LocalPolicy, prompt_texts: list[str], response_token_ids: list[list[int]]
) -> list[list[float]]:
    """Log-probs (temperature 1) of each response token given its templated prompt; [] for an empty one."""
    out: list[list[float]] = []
    for prompt, response in zip(prompt_texts, response_token_ids, strict=True):
        if not response:
            out.append([])
            continue
        ids = policy.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        seq, mask = left_pad([ids + list(response)], policy.tokenizer.pad_token_id, policy.device)
        with torch.no_grad(), eval_mode(policy.model):
            logp, _ = trailing_logprobs(policy.model, seq, mask, len(response))
        out.append(logp[0].tolist())
    return out
