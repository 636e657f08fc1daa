"""One GRPO update: π_old and π_ref log-probs once, then `rl.ppo_epochs` passes of `grpo_loss`.

Old log-probs are RECOMPUTED with the same model, mode and dtype right before the update (not the
sampler's): the sampler may batch/pad differently or be a remote server, and a ratio that starts at
exactly 1 is what the clipped surrogate assumes. π_ref is the policy RL started from (the SFT adapter
when `--init` gives one): its trainable weights, kept aside once, are swapped in for the reference
pass (no second model copy). Micro-batches are token-budgeted (`rl.micro_batch_tokens`) and their
gradients accumulate to the exact token mean of the whole iteration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import torch

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import atomic_write_bytes
from krill.train.grpo import grpo_loss
from krill.train.samples import Sample, sequence_logprobs, token_budget_batches

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


def grpo_update(
    model: Any,
    optimizer: Any,
    samples: list[Sample],
    cfg: KrillConfig,
    accel: Any,
    pad_id: int,
    reference: dict[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """`rl.ppo_epochs` passes of clipped-surrogate + KL over the samples; one optimizer step per pass.

    `reference` (trainable weights of π_ref) defaults to "the adapter disabled" (the base model)."""
    rl = cfg.rl
    informative = accel.reduce(torch.tensor(float(len(samples)), device=accel.device), "sum").item()
    if informative == 0:
        return {"update/skipped": 1.0}
    batches = token_budget_batches(samples, rl.micro_batch_tokens) or [[]]
    total_tokens = sum(sum(s.action_mask) for s in samples)
    model.train()
    olds, refs = _old_and_reference_logprobs(model, batches, accel, pad_id, reference, rl.kl_coef)
    sums: dict[str, float] = {}
    for _ in range(rl.ppo_epochs):
        for k, (b, old, ref) in enumerate(zip(batches, olds, refs, strict=True)):
            sync = nullcontext() if k == len(batches) - 1 else accel.no_sync(model)
            with sync, accel.autocast():
                _accumulate(sums, model, b, old, ref, cfg, accel, pad_id, total_tokens)
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
    return {**sums, "update/skipped": 0.0, "tokens/trained": float(total_tokens),
            "update/micro_batches": float(len(batches))}  # fmt: skip


def _old_and_reference_logprobs(model, batches, accel, pad_id, reference, kl_coef):
    """π_old and π_ref log-probs of every micro-batch, once per iteration, same mode and dtype as the update."""
    inner = accel.unwrap_model(model)
    adapter_off = getattr(inner, "disable_adapter", None)
    if reference is not None:
        adapter_off = partial(reference_weights, inner, reference)
    if adapter_off is None and kl_coef > 0:
        raise KrillError(
            "the RL reference is the model with its LoRA adapter disabled; with full fine-tuning set rl.kl_coef=0"
        )
    olds, refs = [], []
    with torch.no_grad():
        for b in batches:
            with accel.autocast():
                olds.append(sequence_logprobs(inner, b, pad_id, accel.device)[0] if b else None)
                if b and adapter_off is not None:
                    with adapter_off():
                        refs.append(sequence_logprobs(inner, b, pad_id, accel.device)[0])
                else:
                    refs.append(olds[-1])
    return olds, refs


def _accumulate(sums, model, batch, old, ref, cfg, accel, pad_id, total_tokens) -> None:
    """Backward one micro-batch's loss, weighted so the micro-batches add up to the iteration's token mean."""
    rl = cfg.rl
    if not batch:  # this process has nothing to learn; still join DDP's gradient all-reduce
        accel.backward(sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0)
        return
    logp, mask, ent = sequence_logprobs(model, batch, pad_id, accel.device, entropy=True)
    adv = torch.tensor([s.advantage_row(mask.shape[1]) for s in batch], device=accel.device)  # [b, R]
    loss, st = grpo_loss(logp, old, ref, adv, mask, rl.clip_ratio, rl.kl_coef)
    weight = st.tokens.item() / max(total_tokens, 1)  # micro-batch token mean → iteration token mean
    accel.backward(loss * weight)
    values = (st.loss, st.policy_loss, st.kl, st.clip_frac, st.approx_kl, st.ratio_mean)
    for name, v in zip(LOSS_STATS, values, strict=True):
        sums[f"losses/{name}"] = sums.get(f"losses/{name}", 0.0) + v.item() * weight / rl.ppo_epochs
    entropy = (ent * mask).sum().item() / max(total_tokens, 1) / rl.ppo_epochs
    sums["losses/entropy"] = sums.get("losses/entropy", 0.0) + entropy
