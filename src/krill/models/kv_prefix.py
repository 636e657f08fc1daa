"""Prefix KV-cache reuse across `generate` calls: an agent step is prefill-bound on CPU.

Agent prompts put what stays fixed within an episode first (system text, skills, task), so each
step's prompt shares a long prefix with the previous step's; in conversation mode a step's prompt
*extends* the previous one, which is then dropped, so the cache keeps each live episode's states. `PrefixCache` keeps the KV states of
recent prompts (LRU, bounded in bytes); a new batch reuses, per row, the longest common prefix
with any stored prompt and prefills only the rest.

Batch layout (B rows, R = longest reused prefix, S = longest suffix; `.` = padding, masked out):

    cache part [B, R]: . . p p p      suffix part [B, S]: . s s     positions: p → 0..r_i-1, s → r_i..

Padding in the middle is fine: positions come from the mask, and RoPE was applied to the stored
keys at their original positions. The cache is dropped whenever the weights change (an RL update),
detected through the parameters' version counters and a checksum of the trainable ones.
"""

from __future__ import annotations

import numpy as np
import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (keys [heads, T, dim], values [heads, T, dim])


def weights_version(model) -> tuple[int, int, float]:
    """Changes whenever the weights do: in-place version counters (optimizer steps, load_state_dict)
    plus a checksum of the trainable parameters (fused optimizers do not bump the counters)."""
    params = list(model.parameters())
    trainable = [p.detach().float().sum() for p in params if p.requires_grad]
    checksum = float(torch.stack(trainable).sum().item()) if trainable else 0.0
    return id(model), sum(p._version for p in params), checksum


def kv_heads_and_dim(model) -> tuple[int, int]:
    """(K/V heads, head dim) of one layer: grouped-query models have fewer K/V heads than queries."""
    cfg = model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    return heads, getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def kv_bytes_per_token(model) -> int:
    """Bytes of K and V one token occupies across all layers (SmolLM2-135M fp32: 46 KB)."""
    heads, head_dim = kv_heads_and_dim(model)
    return 2 * model.config.num_hidden_layers * heads * head_dim * next(model.parameters()).element_size()


class PrefixCache:
    """LRU of prompt KV states keyed by token ids, bounded by `max_bytes` of stored tensors."""

    def __init__(self, max_bytes: int = 1 << 30, min_reuse: int = 16):
        self.max_bytes, self.min_reuse = max_bytes, min_reuse
        # plain dicts in LRU order (oldest first; a use moves a key last): iterating an OrderedDict
        # hashes every key again, and a key is a whole prompt's ids (bench_prefix_lookup.py)
        self.entries: dict[tuple[int, ...], KV] = {}
        self.sizes: dict[tuple[int, ...], int] = {}
        # each key's ids as an array, made once, in the same order: a lookup compares against every
        # entry, and rebuilding an array from a 4,000-token tuple costs more than the comparison
        self.arrays: dict[tuple[int, ...], np.ndarray] = {}
        self.version: tuple[int, int, float] | None = None
        self.reused_tokens = self.prefilled_tokens = 0

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self.entries),
            "bytes": sum(self.sizes.values()),
            "reused_tokens": self.reused_tokens,
            "prefilled_tokens": self.prefilled_tokens,
        }

    def sync(self, model) -> None:
        """Forget everything if the weights changed since the states were computed."""
        version = weights_version(model)
        if version != self.version:
            self.entries.clear()
            self.sizes.clear()
            self.arrays.clear()
            self.version = version

    def lookup(self, ids: list[int]) -> tuple[KV | None, int]:
        """(stored states, reusable length) for the entry sharing the longest prefix with `ids`.

        At least one token is always left to prefill (it produces the first logits).
        """
        best_key, best = None, 0
        query = np.asarray(ids, dtype=np.int64)
        for key, stored in self.arrays.items():  # LRU order: of two sharing as much, the older serves
            n = min(len(key), len(ids) - 1)
            if n <= best or stored[best] != query[best]:  # it cannot share more than `best` ids
                continue
            common = common_prefix(stored[:n], query[:n])
            if common > best:
                best_key, best = key, common
        if best_key is None or best < self.min_reuse:
            return None, 0
        self._touch(best_key)
        return self.entries[best_key], best

    def put(self, ids: list[int], kv: KV) -> None:
        key = tuple(ids)
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if size > self.max_bytes:
            return
        # An entry that is a prefix of the new one can serve no lookup better than it: a conversation
        # step supersedes the episode's previous step, so the cache holds one entry per live episode.
        new = np.asarray(ids, dtype=np.int64)
        stale = [k for k, a in self.arrays.items()
                 if len(k) < len(key) and a[-1] == new[len(k) - 1] and np.array_equal(a, new[: len(k)])]  # fmt: skip
        for old in stale:
            self._drop(old)
        self.entries[key], self.sizes[key], self.arrays[key] = kv, size, new
        self._touch(key)
        total = sum(self.sizes.values())
        while total > self.max_bytes:
            oldest = next(iter(self.entries))
            total -= self.sizes[oldest]
            self._drop(oldest)

    def _touch(self, key: tuple[int, ...]) -> None:
        """Most recently used: last in both dicts."""
        self.entries[key] = self.entries.pop(key)
        self.arrays[key] = self.arrays.pop(key)

    def _drop(self, key: tuple[int, ...]) -> None:
        del self.entries[key], self.sizes[key], self.arrays[key]


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading ids two equal-length arrays share."""
    diff = np.flatnonzero(a != b)
    return int(diff[0]) if len(diff) else len(a)


def build_inputs(prompts: list[list[int]], reuse: list[int], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    """Left-padded suffix ids [B, S], the full mask [B, R+S] and suffix positions [B, S]."""
    R = max(reuse)
    suffixes = [p[r:] for p, r in zip(prompts, reuse, strict=True)]
    S = max(len(s) for s in suffixes)
    ids = torch.full((len(prompts), S), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), R + S), dtype=torch.long)
    positions = torch.zeros((len(prompts), S), dtype=torch.long)
    for b, (s, r) in enumerate(zip(suffixes, reuse, strict=True)):
        ids[b, S - len(s) :] = torch.tensor(s)
        mask[b, R - r : R] = 1
        mask[b, R + S - len(s) :] = 1
        positions[b, S - len(s) :] = torch.arange(r, r + len(s))
    return ids.to(device), mask.to(device), positions.to(device)


def stack_prefixes(
    found: list[KV | None], reuse: list[int], n_layers: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the rows' reused states left-padded to a common length R: ([B, h, R, d], [B, h, R, d])."""
    R = max(reuse)
    ref_k, ref_v = next(kv for kv in found if kv is not None)[0]
    out = []
    for layer in range(n_layers):
        ks, vs = [], []
        for kv, r in zip(found, reuse, strict=True):
            k = ref_k.new_zeros((ref_k.shape[0], R, ref_k.shape[2]))
            v = ref_v.new_zeros((ref_v.shape[0], R, ref_v.shape[2]))
            if kv is not None and r:
                k[:, R - r :] = kv[layer][0][:, :r]
                v[:, R - r :] = kv[layer][1][:, :r]
            ks.append(k)
            vs.append(v)
        out.append((torch.stack(ks), torch.stack(vs)))
    return out


def extract_rows(cache, mask: torch.Tensor) -> list[KV]:
    """Each row's prompt states (real positions only) from a batched cache right after prefill."""
    rows = []
    for b in range(mask.shape[0]):
        idx = mask[b].nonzero().squeeze(-1)
        rows.append(
            [(layer.keys[b][:, idx].clone(), layer.values[b][:, idx].clone()) for layer in cache.layers]
        )
    return rows
