"""Each chat's K/V kept in place across calls: one slot of one preallocated cache per conversation.

The prefix cache (`kv_prefix.py`) keeps each prompt's states as tensors of their own and rebuilds a
batch from them on every call: per row and layer a copy out (`extract_rows`) and a copy back in
(`stack_prefixes`), hundreds of small copies a GPU waits on, then a copy into the static decoder's
bucket. Here the store *is* the batch: one `StaticCache` of R slots × C columns (both bucketed, as
in `static_decode.py`), where a chat stays in its slot from turn to turn and a call writes only what
is new. Prefill, the trie pass of constrained rows and the decode steps all run on it.

Layout: every slot writes at the same column (a StaticCache has one write counter), so a call's new
tokens go in a block of columns [column, column + W), right-aligned per slot; a slot with fewer new
tokens leaves masked gaps. `cols[s]` lists, in order, the columns holding slot s's tokens `ids[s]`;
the attention mask is rebuilt from them each call. Gaps, dropped tokens, trie nodes and decoded tokens
(dropped at the end of a call: the next prompt brings the reply back as its new turn) are reclaimed
when the columns run out: every slot's tokens move left, one gather per layer.

A call's prompt takes, in order of how much it reuses:
- the slot sharing its longest prefix (a conversation's previous turn, or in window mode the same
  system, skills and task): tokens past the shared part are dropped in place;
- if another prompt of the call took that slot (a GRPO group's episodes start from one prompt), the
  shared part is copied into a free slot;
- else a free slot (empty, or the least recently used).
What the slots lack is then computed once per distinct part, on a sub-batch of just the rows that
need it (their slots' tokens gathered as its context, the used columns only), and written into every
slot that needs it: new prompts sharing a prefix (a group's first prompt, G times) have it computed
once, chats alike (a group's episodes that acted alike) their new turn once. A dense pass over the
slots would compute every slot, used or not, and each copy of a chat. Last, each prompt's final token
runs in one pass over all slots, for the logits the trie pass and the decode steps start from.
Tokens and log-probs are those of the prefix-cache path (tests/models/test_chat_slots.py).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from krill.models.kv_prefix import common_prefix, kv_bytes_per_token, kv_heads_and_dim, weights_version
from krill.models.static_decode import StaticBatch, column_bucket, row_bucket

PREFILL_CHUNK = 512  # queries per prefill pass: bounds the [rows, 1, queries, columns] attention mask
# rows × (context + new) columns per sub-batch of `_prefill_rows`: bounds its copy of the context's K/V
PASS_TOKENS = 1 << 18


class ChatSlots:
    """The slots, their token ids and columns, and the shared write column (see the module docstring)."""

    def __init__(self, model, cache_kw: str, min_reuse: int = 16):
        self.model, self.min_reuse = model, min_reuse
        self.cache_kw = cache_kw  # `decoding.cache_kwarg(model)`
        self.cache = None  # a StaticCache of `rows` slots × `columns`, allocated on first use
        self.rows = self.columns = self.column = 0
        self.ids: list[np.ndarray] = []  # per slot: the token ids it holds, in order
        self.cols: list[np.ndarray] = []  # per slot: the columns holding them
        self.used: list[int] = []  # per slot: the call that last used it (the least recent is freed first)
        self.calls = 0
        self.version: tuple[int, int, float] | None = None
        self.reused_tokens = self.prefilled_tokens = 0

    def clear(self) -> None:
        """Forget every chat and the counts; the buffer stays (its addresses are a captured step's)."""
        self.ids, self.cols, self.used = [], [], []
        self.reused_tokens = self.prefilled_tokens = 0

    def stats(self) -> dict[str, int]:
        """Like `PrefixCache.stats`: chats held, their K/V buffer's bytes, reused and prefilled tokens."""
        return {
            "entries": sum(len(i) > 0 for i in self.ids),
            "bytes": self.rows * self.columns * kv_bytes_per_token(self.model),
            "reused_tokens": self.reused_tokens,
            "prefilled_tokens": self.prefilled_tokens,
        }

    def prefill(
        self, prompts: list[list[int]], pad_id: int, reserve: int
    ) -> tuple[StaticBatch, torch.Tensor]:
        """Each prompt into a slot, reusing what the slots hold, with room for `reserve` columns after
        (the trie pass's nodes, the decoded tokens: written past the prompts, not kept).

        Returns the static batch over every slot (`rows[s]`: the prompt in slot s, None for the others)
        and the next-token logits [slots, V]."""
        self.calls += 1
        version = weights_version(self.model)  # a checksum of the trainable weights: taken once a call
        if version != self.version:  # states computed under other weights: forget them
            self.version = version
            self.ids, self.cols, self.used = [], [], []  # the buffer stays
        slots, reuse, copies = self._assign(prompts)
        for s, r in zip(slots, reuse, strict=True):  # what a prompt does not share is dropped
            keep = 0 if s in copies else r  # a copy's destination gets its tokens after the move
            self.ids[s], self.cols[s], self.used[s] = self.ids[s][:keep], self.cols[s][:keep], self.calls
        shared = self._shared_prefixes(prompts, reuse)
        ends = [len(p) for p in prompts]
        block = max(shared) + max(e - max(r, c) for e, r, c in zip(ends, reuse, shared, strict=True))
        new = self._make_room(block + reserve)
        slots = [new[s] for s in slots]
        self._copy({new[d]: (new[src], r) for d, (src, r) in copies.items()})
        computed, _ = self._prefill_rows(prompts, slots, shared, pad_id)  # new prompts' shared prefixes
        done, last = self._prefill_rows(prompts, slots, ends, pad_id)  # the rest: every prompt has some
        computed += done
        self.prefilled_tokens += computed
        self.reused_tokens += sum(len(p) for p in prompts) - computed
        rows: list[int | None] = [None] * self.rows
        for b, s in enumerate(slots):
            rows[s] = b
        device = last.device
        logits = last.new_zeros((self.rows, last.shape[-1]))
        logits[torch.tensor(slots, device=device)] = last
        positions = torch.tensor([[max(len(i) - 1, 0)] for i in self.ids], device=device)
        return StaticBatch(self.cache, self._mask(device), positions, rows, self.column), logits

    def _assign(self, prompts: list[list[int]]) -> tuple[list[int], list[int], dict[int, tuple[int, int]]]:
        """(slot of each prompt, tokens it reuses, copies: destination → (source, tokens)); adds empty
        slots when the free ones do not suffice."""
        best = [self._longest(np.asarray(p, dtype=np.int64)) for p in prompts]
        slots, reuse, taken = [-1] * len(prompts), [0] * len(prompts), set()
        for b in sorted(range(len(prompts)), key=lambda b: -best[b][1]):  # the longest reuse claims first
            candidates, r = best[b]
            s = next((s for s in candidates if s not in taken), -1)  # of equals (two chats alike), a free one
            if s >= 0:
                slots[b], reuse[b] = s, r
                taken.add(s)
        homeless = [b for b in range(len(prompts)) if slots[b] < 0]
        # free slots: empty ones first, then the least recently used chats
        free = sorted(set(range(len(self.ids))) - taken, key=lambda s: (len(self.ids[s]) > 0, self.used[s]))
        while len(free) < len(homeless):
            free.append(self._add_slot())
        copies = {}
        for b, s in zip(homeless, free, strict=False):
            slots[b] = s
            candidates, r = best[b]
            if r:  # its best slots went to prompts claiming first, so reusing at least as much: copy
                copies[s], reuse[b] = (candidates[0], r), r
        return slots, reuse, copies

    def window(self, width: int):
        """The slots' cache seen through its first `width` columns: views, so writes land in the buffer
        and the write counter is the buffer's, while attention reads `width` columns, not all of them
        (the trie pass: the prompts' columns and its nodes after them)."""
        view = copy.copy(self.cache)
        view.layers = [copy.copy(layer) for layer in self.cache.layers]
        for layer in view.layers:
            layer.keys, layer.values = layer.keys[:, :, :width], layer.values[:, :, :width]
            layer.max_cache_len = width
        return view

    def _shared_prefixes(self, prompts: list[list[int]], reuse: list[int]) -> list[int]:
        """Per prompt, the prefix it shares with other new prompts of this call (0: none), prefilled once
        for them all (a GRPO group's G episodes start from one prompt no slot holds). New: reusing
        nothing from a slot. Found between neighbours in sorted order; a neighbour sharing less starts
        a group of its own rather than shortening the shared part of those before it."""
        fresh = sorted((b for b in range(len(prompts)) if reuse[b] == 0), key=lambda b: prompts[b])
        out, run, shared = [0] * len(prompts), fresh[:1], 0
        if not fresh:
            return out
        for prev, b in zip(fresh, [*fresh[1:], None], strict=True):
            if b is not None:
                n = min(len(prompts[prev]), len(prompts[b])) - 1  # a token of each left: its logits
                common = (
                    common_prefix(np.asarray(prompts[prev][:n]), np.asarray(prompts[b][:n])) if n > 0 else 0
                )
                if common >= max(shared, self.min_reuse) or (len(run) == 1 and common >= self.min_reuse):
                    run, shared = run + [b], (common if len(run) == 1 else shared)
                    continue
            for member in run if len(run) > 1 else []:
                out[member] = shared
            run, shared = [b], 0
        return out

    def _prefill_rows(
        self, prompts: list[list[int]], slots: list[int], ends: list[int], pad_id: int
    ) -> tuple[int, torch.Tensor | None]:
        """Each slot's tokens up to `ends[b]` of its prompt, computed once per distinct (held part, new
        part) on a sub-batch of just those rows, the tokens their slots hold gathered as its context;
        written (right-aligned) into every slot that needs them at [column, column + W), W the longest
        new part; the write column moves past W. (A dense pass over every slot would also compute the
        slots this call does not use, and every copy of one chat: a group's episodes that acted alike.)
        Returns the tokens computed and each prompt's next-token logits [prompts, V] (None: none computed)."""
        need: dict[tuple, list[int]] = {}
        for b, p in enumerate(prompts):
            held = len(self.ids[slots[b]])
            if ends[b] > held:  # rows alike hold alike tokens: key on what each holds and adds
                need.setdefault((held, tuple(p[: ends[b]])), []).append(b)
        if not need:
            return 0, None
        lead = sorted(need, key=lambda key: len(key[1]) - key[0])  # like lengths share a sub-batch
        W = max(len(key[1]) - key[0] for key in lead)
        L = self.column
        per_pass = max(1, PASS_TOKENS // (L + W))
        out = [
            self._prefill_leads([(key, need[key]) for key in lead[lo : lo + per_pass]], slots, L, W, pad_id)
            for lo in range(0, len(lead), per_pass)
        ]
        logits = torch.cat(out)  # per lead, in `lead` order: each prompt takes its lead's
        at = {b: i for i, key in enumerate(lead) for b in need[key]}
        by_prompt = logits[torch.tensor([at.get(b, 0) for b in range(len(prompts))], device=logits.device)]
        for (held, part), members in need.items():
            for b in members:
                s = slots[b]
                self.ids[s] = np.asarray(part, dtype=np.int64)
                self.cols[s] = np.concatenate([self.cols[s], np.arange(L + W - (len(part) - held), L + W)])
        self.column += W
        return sum(len(part) - held for held, part in need), by_prompt

    def _prefill_leads(self, leads, slots: list[int], L: int, W: int, pad_id: int) -> torch.Tensor:
        """One sub-batch of `_prefill_rows`: each lead's first member's slot as the context (columns
        [0, L)), its new part left-padded to this sub-batch's width, the result scattered to all members.
        Returns each lead's next-token logits [leads, V]."""
        from transformers import DynamicCache

        device = self.cache.layers[0].keys.device
        w = max(len(part) - held for (held, part), _ in leads)
        ids = np.full((len(leads), w), pad_id, dtype=np.int64)
        positions = np.zeros((len(leads), w), dtype=np.int64)
        mask = np.zeros((len(leads), L + w), dtype=bool)
        for i, ((held, part), members) in enumerate(leads):
            k = len(part) - held
            ids[i, w - k :], positions[i, w - k :] = part[held:], np.arange(held, len(part))
            mask[i, self.cols[slots[members[0]]]] = True
            mask[i, L + w - k :] = True
        rows = torch.tensor([slots[members[0]] for _, members in leads], device=device)
        cache = DynamicCache(config=self.model.config)
        if L:
            for i, layer in enumerate(self.cache.layers):  # the context: gathered, used columns only
                cache.update(layer.keys[rows, :, :L], layer.values[rows, :, :L], i)
        ids_t, pos_t = torch.from_numpy(ids).to(device), torch.from_numpy(positions).to(device)
        mask_t = torch.from_numpy(mask).to(device).long()
        for lo in range(0, w, PREFILL_CHUNK):
            hi = lo + PREFILL_CHUNK
            out = self.model(input_ids=ids_t[:, lo:hi], attention_mask=mask_t[:, : L + hi], position_ids=pos_t[:, lo:hi],
                             use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})  # fmt: skip
        to = torch.tensor([slots[b] for _, members in leads for b in members], device=device)
        which = torch.tensor([i for i, (_, members) in enumerate(leads) for _ in members], device=device)
        for layer, done in zip(self.cache.layers, cache.layers, strict=True):  # one write per layer
            layer.keys[to, :, L + W - w : L + W] = done.keys[which, :, L : L + w]
            layer.values[to, :, L + W - w : L + W] = done.values[which, :, L : L + w]
        return out.logits[:, -1, :]

    def _longest(self, query: np.ndarray) -> tuple[list[int], int]:
        """(slots, shared tokens): the slots sharing the longest prefix with `query` (one token left over)."""
        slots, best = [], 0
        for s, ids in enumerate(self.ids):
            n = min(len(ids), len(query) - 1)
            # O(1) skips: too short, or differing where it would have to agree to match the best so far
            if n >= max(best, 1) and ids[max(best, 1) - 1] == query[max(best, 1) - 1]:
                common = common_prefix(ids[:n], query[:n])
                if common > best:
                    slots, best = [s], common
                elif common == best:
                    slots.append(s)
        return (slots, best) if best >= self.min_reuse else ([], 0)

    def _add_slot(self) -> int:
        self.ids.append(np.zeros(0, dtype=np.int64))
        self.cols.append(np.zeros(0, dtype=np.int64))
        self.used.append(0)
        return len(self.ids) - 1

    # -- the buffer ------------------------------------------------------------------------------
    def _make_room(self, extra: int) -> dict[int, int]:
        """Every slot this call uses and `extra` free columns after the write column; returns each kept
        slot's new index. The slots grow to hold the chats of this call and the one before (one step's
        prompts may come in several calls) and shrink once those fill at most a quarter of them."""
        now = [s for s in range(len(self.ids)) if self.used[s] == self.calls]
        recent = [s for s in range(len(self.ids)) if self.used[s] == self.calls - 1 and len(self.ids[s])]
        rows = row_bucket(len(now) + len(recent))
        if rows <= self.rows < 4 * rows:  # no churn: keep the size while it fits
            rows = self.rows
        if (
            self.cache is not None
            and rows == len(self.ids) == self.rows
            and self.column + extra <= self.columns
        ):
            return {s: s for s in range(rows)}
        others = sorted(set(range(len(self.ids))) - set(now), key=lambda s: -self.used[s])
        keep = (now + others)[:rows]
        self._rebuild(keep, rows, extra)
        return {old: new for new, old in enumerate(keep)}

    def _rebuild(self, keep: list[int], rows: int, extra: int) -> None:
        """Slot i ← old slot `keep[i]`, each slot's tokens moved to columns [0, its length): one gather
        per layer, in place when the shape stays (a captured step keeps its buffers' addresses)."""
        L = max([len(self.cols[s]) for s in keep] + [0])
        columns = (
            self.columns if rows == self.rows and L + extra <= self.columns else column_bucket(L + extra)
        )
        moved = self._gather(keep, L) if self.cache is not None and L else None
        if self.cache is None or (rows, columns) != (self.rows, self.columns):
            self.cache = None  # freed before the new one is allocated
            self.cache = self._allocate(rows, columns)
        if moved is not None:
            for layer, (k, v) in zip(self.cache.layers, moved, strict=True):
                layer.keys[: len(keep), :, :L] = k
                layer.values[: len(keep), :, :L] = v
        empty = np.zeros(0, dtype=np.int64)
        self.ids = [self.ids[s] for s in keep] + [empty] * (rows - len(keep))
        self.used = [self.used[s] for s in keep] + [0] * (rows - len(keep))
        self.cols = [np.arange(len(i), dtype=np.int64) for i in self.ids]
        self.rows, self.columns, self.column = rows, columns, L

    def _gather(self, keep: list[int], L: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the kept slots' tokens left-aligned: ([len(keep), heads, L, dim], same for values)."""
        device = self.cache.layers[0].keys.device
        cols = np.zeros((len(keep), L), dtype=np.int64)  # past a slot's length: column 0, masked out
        for i, s in enumerate(keep):
            cols[i, : len(self.cols[s])] = self.cols[s]
        # slots added by this call are not in the buffer yet (and empty): they read row 0, masked out
        r = torch.tensor([s if s < self.rows else 0 for s in keep], device=device)[:, None]
        c = torch.from_numpy(cols).to(device)
        # advanced indices around a slice put their dims first: [k, L, heads, dim] → [k, heads, L, dim]
        return [(layer.keys[r, :, c].transpose(1, 2), layer.values[r, :, c].transpose(1, 2))
                for layer in self.cache.layers]  # fmt: skip

    def _allocate(self, rows: int, columns: int):
        from transformers import StaticCache

        heads, dim = kv_heads_and_dim(self.model)
        p = next(self.model.parameters())
        cache = StaticCache(config=self.model.config, max_cache_len=columns)
        zeros = torch.zeros((rows, heads, columns, dim), dtype=p.dtype, device=p.device)
        for i in range(len(cache.layers)):  # allocates each layer's buffers (their first write)
            cache.update(zeros, zeros, i)
        return cache

    def _copy(self, copies: dict[int, tuple[int, int]]) -> None:
        """Destination slots get their source's first tokens (whole rows are copied: one op per layer)."""
        if not copies:
            return
        device = self.cache.layers[0].keys.device
        dst = torch.tensor(list(copies), device=device)
        src = torch.tensor([s for s, _ in copies.values()], device=device)
        for layer in self.cache.layers:
            layer.keys[dst] = layer.keys[src]
            layer.values[dst] = layer.values[src]
        for d, (s, r) in copies.items():
            self.ids[d], self.cols[d] = self.ids[s][:r].copy(), self.cols[s][:r].copy()

    def _mask(self, device) -> torch.Tensor:
        """[slots, columns] long: 1 where a slot's tokens are."""
        mask = np.zeros((self.rows, self.columns), dtype=bool)
        for s, cols in enumerate(self.cols):
            mask[s, cols] = True
        return torch.from_numpy(mask).to(device).long()  # sent as bytes, widened on the device
