"""One GRPO update: `rl.ppo_epochs` passes of `grpo_loss` over an iteration's samples.

What is scored: in token mode, each response token's log-prob (`sequence_logprobs`); in choice mode
(`agent.constrain_actions`), each decision's log π_T(a|s) over its admissible actions
(`choice_step_logprobs`), the distribution the rollout sampled from.

π_old: with one pass (`rl.ppo_epochs: 1`, the default) the samples are on-policy and π_old is the
current policy itself, detached: the ratio is exactly 1 and no extra forward pass is needed. With
more passes it is RECOMPUTED once, with the same model, mode and dtype, before the first (not the
sampler's numbers: a sampler may batch differently or be a remote server). π_ref is the policy RL
started from (the SFT adapter when `--init` gives one): its trainable weights, kept aside once, are
swapped in for one no-grad pass, and only when `rl.kl_coef` > 0 (at 0 there is no reference pass
at all). Micro-batches are token-budgeted (`rl.micro_batch_tokens`) and their gradients accumulate
to the exact mean of the whole iteration (over action tokens, or over decisions in choice mode).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import atomic_write_bytes
from krill.train.grpo import grpo_loss
from krill.train.samples import Sample, choice_step_logprobs, sequence_logprobs, token_budget_batches

LOSS_STATS = ("loss", "policy_loss", "kl", "clip_frac", "approx_kl", "ratio")


@contextmanager
def reference_weights(model: Any, reference: dict[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily load the reference policy's trainable weights (LoRA tensors) into `model`."""
    params = dict(model.named_parameters())
    current = {name: params[name].detach().clone() for name in reference}
    with torch.no_grad():
        for name, value in reference.items():
            params[name].copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, value in current.items():
                params[name].copy_(value)


def reference_state(model: Any, out_dir: Path, resume: bool, accel: Any) -> dict[str, torch.Tensor]:
    """π_ref's trainable weights: the starting policy's, saved once in OUT/reference.safetensors."""
    from safetensors.torch import load_file
    from safetensors.torch import save as st_save

    path = out_dir / "reference.safetensors"
    if resume and path.exists():
        return {k: v.to(accel.device) for k, v in load_file(str(path)).items()}
    state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if accel.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, st_save({k: v.cpu().contiguous() for k, v in state.items()}))
    return state


@dataclass
class Scored:
    """What one micro-batch's pass yields, in the shapes `grpo_loss` takes: [b, R] tokens or [S, 1] decisions."""

    logp: torch.Tensor
    mask: torch.Tensor
    advantages: torch.Tensor
    entropy: torch.Tensor | None = None
    off_policy: torch.Tensor | None = None  # choice mode: 1 for an expert episode's decisions
    recorded: torch.Tensor | None = None  # choice mode: the rollout's log π_T (NaN where none)


def score_batch(model: Any, batch: list[Sample], cfg: KrillConfig, pad_id: int, end_of_turn: int | None,
                device: Any, *, entropy: bool = False) -> Scored:  # fmt: skip
    """The policy's log-probs of a micro-batch: per action token, or per decision in choice mode."""
    if batch and batch[0].choice_steps is not None:
        c = choice_step_logprobs(
            model, batch, pad_id, end_of_turn, cfg.rl.temperature, cfg.agent.choice_score
        )
        col = lambda x: x[:, None]  # noqa: E731  [S] → [S, 1]: one "token" per decision
        return Scored(col(c.logp), torch.ones_like(col(c.logp)), col(c.advantages), col(c.entropy),
                      col(c.off_policy), c.recorded)  # fmt: skip
    logp, mask, ent = sequence_logprobs(model, batch, pad_id, device, entropy=entropy)
    adv = torch.tensor([s.advantage_row(mask.shape[1]) for s in batch], device=device)  # [b, R]
    return Scored(logp, mask, adv, ent)


def grpo_update(
    model: Any,
    optimizer: Any,
    samples: list[Sample],
    cfg: KrillConfig,
    accel: Any,
    pad_id: int,
    reference: dict[str, torch.Tensor] | None = None,
    end_of_turn: int | None = None,
) -> dict[str, float]:
    """`rl.ppo_epochs` passes of clipped-surrogate + KL over the samples; one optimizer step per pass.

    `reference` (trainable weights of π_ref) defaults to "the adapter disabled" (the base model);
    `end_of_turn` (the tokenizer's EOS) closes every option in choice mode, as in decoding."""
    rl = cfg.rl
    informative = accel.reduce(torch.tensor(float(len(samples)), device=accel.device), "sum").item()
    if informative == 0:
        return {"update/skipped": 1.0}
    batches = token_budget_batches(samples, rl.micro_batch_tokens) or [[]]
    total = sum(_units(s) for s in samples)
    score = partial(score_batch, cfg=cfg, pad_id=pad_id, end_of_turn=end_of_turn, device=accel.device)
    model.train()
    t0 = time.perf_counter()
    olds, refs = _old_and_reference_logprobs(model, batches, accel, score, reference, rl)
    t1 = time.perf_counter()
    sums: dict[str, float] = {}
    for epoch in range(rl.ppo_epochs):
        for k, (b, old, ref) in enumerate(zip(batches, olds, refs, strict=True)):
            sync = nullcontext() if k == len(batches) - 1 else accel.no_sync(model)
            with sync, accel.autocast():
                _accumulate(sums, model, b, old, ref, cfg, accel, score, total, first=epoch == 0)
        grad_norm = accel.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], rl.max_grad_norm
        )
        sums["losses/grad_norm"] = sums.get("losses/grad_norm", 0.0) + float(grad_norm) / rl.ppo_epochs
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    if accel.num_processes > 1:  # log the mean over processes (each saw its own task shard)
        keys = sorted(sums)
        vals = accel.reduce(torch.tensor([sums[k] for k in keys], device=accel.device), "mean").tolist()
        sums = dict(zip(keys, vals, strict=True))
    decisions = sum(len(s.choice_steps) for s in samples if s.choice_steps is not None)
    return {**sums, "update/skipped": 0.0, "tokens/trained": float(total - decisions),
            "decisions/trained": float(decisions), "update/micro_batches": float(len(batches)),
            "time/old_ref_s": t1 - t0, "time/backward_s": time.perf_counter() - t1}  # fmt: skip


def _units(sample: Sample) -> int:
    """What the loss averages over: the sample's action tokens, or its decisions in choice mode."""
    return len(sample.choice_steps) if sample.choice_steps is not None else sum(sample.action_mask)


def _old_and_reference_logprobs(model, batches, accel, score, reference, rl):
    """π_old (only when several passes reuse the samples) and π_ref (only when `rl.kl_coef` > 0) of
    every micro-batch, once per iteration, same mode and dtype as the update; None where not needed."""
    inner = accel.unwrap_model(model)
    adapter_off = getattr(inner, "disable_adapter", None)
    if reference is not None:
        adapter_off = partial(reference_weights, inner, reference)
    if adapter_off is None and rl.kl_coef > 0:
        raise KrillError(
            "the RL reference is the model with its LoRA adapter disabled; with full fine-tuning set rl.kl_coef=0"
        )
    olds: list[torch.Tensor | None] = [None] * len(batches)
    refs: list[torch.Tensor | None] = [None] * len(batches)
    with torch.no_grad():
        for k, b in enumerate(batches):
            with accel.autocast():
                if b and rl.ppo_epochs > 1:
                    olds[k] = score(inner, b).logp
                if b and rl.kl_coef > 0:
                    with adapter_off():
                        refs[k] = score(inner, b).logp
    return olds, refs


def _accumulate(sums, model, batch, old, ref, cfg, accel, score, total, *, first: bool) -> None:
    """Backward one micro-batch's loss, weighted so the micro-batches add up to the iteration's mean."""
    rl = cfg.rl
    if not batch:  # this process has nothing to learn; still join DDP's gradient all-reduce
        accel.backward(sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0)
        return
    s = score(model, batch, entropy=True)
    old = s.logp.detach() if old is None else old  # one pass: on-policy, the ratio is exactly 1
    ref = s.logp.detach() if ref is None else ref  # β = 0: no reference, no KL
    loss, st = grpo_loss(s.logp, old, ref, s.advantages, s.mask, rl.clip_ratio, rl.kl_coef,
                         off_policy=s.off_policy, shaping_gamma=rl.off_policy_gamma)  # fmt: skip
    weight = st.tokens.item() / max(total, 1)  # micro-batch mean → iteration mean
    accel.backward(loss * weight)
    values = (st.loss, st.policy_loss, st.kl, st.clip_frac, st.approx_kl, st.ratio_mean)
    for name, v in zip(LOSS_STATS, values, strict=True):
        sums[f"losses/{name}"] = sums.get(f"losses/{name}", 0.0) + v.item() * weight / rl.ppo_epochs
    entropy = (s.entropy * s.mask).sum().item() / max(total, 1) / rl.ppo_epochs
    sums["losses/entropy"] = sums.get("losses/entropy", 0.0) + entropy
    if first and s.recorded is not None:  # the sampled policy is the trained policy: how close, in nats
        on = ~torch.isnan(s.recorded)
        if bool(on.any()):
            gap = (s.logp.detach()[:, 0][on] - s.recorded[on]).abs().max().item()
            sums["choices/recorded_gap"] = max(sums.get("choices/recorded_gap", 0.0), gap)
