"""Batched decoding with a KV cache: left-padded prompts, greedy or nucleus sampling, per-row stop strings.

A hand-written loop (not `model.generate`) so that every row stops on its own stop string, finished rows
leave the batch (less compute per step), and the log-prob of each chosen token is exact.

Log-prob convention: `logprobs[t] = log_softmax(raw_logits_t)[token_t]`, i.e. under the model's
distribution at temperature 1 without top-p truncation, whatever temperature was used to sample. That
is the π_θ(a|s) GRPO's ratio needs, and what `score()` recomputes teacher-forced. Rows restricted to
given choices (`krill.models.choices`) record the same per-token log-probs of the action they chose.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from krill.models.choices import ChoiceTrie, pick_choices
from krill.models.kv_prefix import PrefixCache, build_inputs, extract_rows, kv_bytes_per_token, stack_prefixes

ROWWISE_MIN_TOKENS = 128  # CPU: a shorter prefill is bound by reading the weights: n row passes, n reads


@dataclass
class RowResult:
    """What one prompt produced: token ids, their log-probs, the decoded text and why it stopped."""

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"
    choice_index: int | None = None  # rows answered from given choices: which one (krill.models.choices)
    choice_logprob: float | None = None  # and log π_T of it, the choice policy's own log-prob


def find_stop(text: str, stops: list[str]) -> int:
    """End index of the earliest stop string that follows some non-whitespace content, else -1.

    Leading whitespace never stops a row, so a stop of "\\n" ends a bare action line instead of
    cutting an empty answer before it starts.

    >>> find_stop("\\ngo to desk 1\\nmore", ["\\n"])
    14
    """
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return -1
    best = -1
    for s in stops:
        i = text.find(s, start)
        if i >= 0 and (best < 0 or i + len(s) < best):
            best = i + len(s)
    return best


def next_tokens(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row from raw logits [B, V]; returns (tokens [B], their log-probs at T=1 [B])."""
    logits = logits.float()
    logp = F.log_softmax(logits, dim=-1)  # [B, V]
    if temperature <= 0:
        tokens = logits.argmax(dim=-1)
    else:
        probs = F.softmax(logits / temperature, dim=-1)
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            # drop tokens once the mass before them already reaches top_p (the top token always stays)
            drop = (sorted_p.cumsum(dim=-1) - sorted_p) >= top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


@torch.no_grad()
def decode_batch(
    model,
    tokenizer,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: list[str] | None = None,
    generator: torch.Generator | None = None,
    prefix_cache: PrefixCache | None = None,
    rowwise_prefill: bool = False,
    choices: list[list[list[int]] | None] | None = None,
    choice_score: str = "sum",
) -> list[RowResult]:
    """Decode every prompt (token ids) together until EOS, a stop string, or `max_new_tokens`.

    With `prefix_cache`, each row reuses the stored KV states of its longest known prefix and only
    the rest is prefilled; the new prompts' states are stored for the next call. `rowwise_prefill`
    (needs the cache) prefills one row at a time, so no compute goes to padding: on CPU prefill is
    compute-bound and gains nothing from batching, while decode (memory-bound) still runs batched.
    `choices[i]` (token-id sequences, or None): row i answers the most likely of them (or samples
    one from π_T), then end-of-turn; all such rows are scored in one pass (`krill.models.choices`,
    `choice_score` sum | mean).
    """
    n = len(prompts)
    # row-wise only when every row's states fit in the cache at once (else the batch would recompute
    # them), and only for long suffixes: a short one (a conversation's new turn) is bound by reading
    # the weights, so one padded batch pass beats n row passes
    fits = (
        prefix_cache is not None
        and sum(map(len, prompts)) * kv_bytes_per_token(model) <= prefix_cache.max_bytes
    )
    if rowwise_prefill and fits and n > 1 and _longest_suffix(prompts, prefix_cache) >= ROWWISE_MIN_TOKENS:
        for ids in prompts:  # each row's states land in the cache; the batch below reuses them
            _prefill(model, tokenizer, [ids], prefix_cache)
        prefix_cache.paused = True  # the batch step below re-reads them: not new reuse, nothing to store
    stops = [s for s in (stop or []) if s]
    eos = _eos_ids(model, tokenizer)
    end_of_turn = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else min(eos)
    rows = [RowResult() for _ in range(n)]
    tries = [ChoiceTrie.build(c) if c else None for c in (choices or [None] * n)]
    live = list(range(n))  # original row index of each row still in the batch
    try:
        cache, logits, attention_mask, positions = _prefill(model, tokenizer, prompts, prefix_cache)
    finally:
        if prefix_cache is not None:
            prefix_cache.paused = False
    cache_kw = cache_kwarg(model)
    device = attention_mask.device
    if any(tries):  # rows with choices are answered at once; the others decode below
        picks = pick_choices(model, cache, attention_mask, positions, logits, tries, end_of_turn, cache_kw,
                             temperature, generator, choice_score)  # fmt: skip
        for i, pick in enumerate(picks):
            if pick is not None:
                rows[i].token_ids, rows[i].logprobs = pick.token_ids, pick.logprobs
                rows[i].choice_index, rows[i].choice_logprob = pick.index, pick.choice_logprob
                rows[i].finish_reason = "stop"
        live = [i for i in range(n) if picks[i] is None]
        if not live:
            max_new_tokens = 0
        elif len(live) < n:
            idx = torch.tensor(live, device=device)
            cache.batch_select_indices(idx)
            logits, attention_mask, positions = logits[idx], attention_mask[idx], positions[idx]
    for _ in range(max_new_tokens):
        tokens, logps = next_tokens(logits, temperature, top_p, generator)
        keep = []
        for j, (tok, lp) in enumerate(zip(tokens.tolist(), logps.tolist(), strict=True)):
            row = rows[live[j]]
            row.token_ids.append(tok)
            row.logprobs.append(lp)
            if tok in eos or _hit_stop(tokenizer, row, stops):
                row.finish_reason = "stop"
            else:
                keep.append(j)
        if not keep:
            break
        if len(keep) < len(live):  # finished rows leave the batch: later steps cost less
            idx = torch.tensor(keep, device=device)
            cache.batch_select_indices(idx)
            tokens, attention_mask, positions = tokens[idx], attention_mask[idx], positions[idx]
            live = [live[j] for j in keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(live), 1))], dim=-1)
        positions = positions[:, -1:] + 1
        logits = model(
            input_ids=tokens[:, None],
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=True,
            **{cache_kw: cache},
        ).logits[:, -1, :]
    for row in rows:
        _finalize(tokenizer, row, stops, eos)
    return rows


def _longest_suffix(prompts: list[list[int]], prefix_cache: PrefixCache) -> int:
    return max(len(ids) - prefix_cache.lookup(ids)[1] for ids in prompts)


def _prefill(model, tokenizer, prompts: list[list[int]], prefix_cache: PrefixCache | None):
    """Run the prompts through the model; returns (cache, last logits [B, V], mask, positions)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)
    found, reuse = [None] * len(prompts), [0] * len(prompts)
    if prefix_cache is not None:
        prefix_cache.sync(model)
        for b, ids in enumerate(prompts):
            found[b], reuse[b] = prefix_cache.lookup(ids)
    if any(reuse):
        for layer, (k, v) in enumerate(stack_prefixes(found, reuse, len(cache.layers))):
            cache.update(k, v, layer)
    ids, mask, positions = build_inputs(prompts, reuse, tokenizer.pad_token_id, device)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **{cache_kwarg(model): cache},
    )
    if prefix_cache is not None and not prefix_cache.paused:
        prefix_cache.reused_tokens += sum(reuse)
        prefix_cache.prefilled_tokens += sum(len(p) for p in prompts) - sum(reuse)
        for ids_b, kv in zip(prompts, extract_rows(cache, mask), strict=True):
            prefix_cache.put(ids_b, kv)
    return cache, out.logits[:, -1, :], mask, positions


def cache_kwarg(model) -> str:
    """transformers ≥ 5.2x names the KV cache argument `cache`; older versions `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen_eos) if isinstance(gen_eos, list) else {gen_eos}
    return {i for i in ids if i is not None}


def _hit_stop(tokenizer, row: RowResult, stops: list[str]) -> bool:
    if not stops:
        return False
    row.text = tokenizer.decode(row.token_ids, skip_special_tokens=True)
    return find_stop(row.text, stops) >= 0


def _finalize(tokenizer, row: RowResult, stops: list[str], eos: set[int]) -> None:
    """Decode the text and cut it right after the first stop string (token ids are kept whole)."""
    ids = row.token_ids[:-1] if row.token_ids and row.token_ids[-1] in eos else row.token_ids
    row.text = tokenizer.decode(ids, skip_special_tokens=True)
    end = find_stop(row.text, stops) if stops else -1
    if end >= 0:
        row.text = row.text[:end]
