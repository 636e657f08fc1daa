"""Answer with one of a row's given choices (the env's admissible actions): the most likely one.

A small model's commonest failure is an action that is not in the room (`go to sofa 2` in a kitchen),
repeated until the step cap. With `agent.constrain_actions` the local decoder does not generate
freely: it scores every admissible action as a whole, log p(action tokens, end-of-turn | prompt),
and takes the best (greedy) or samples one in proportion to p^(1/T). Whole-action scores matter:
decoding token by token under a prefix mask commits to the first token (`take`) before it sees that
the object it wanted is not there, and the mask then forces whatever object is (measured in
docs/results.md: most wrong `take`s came from there).

All choices are scored in ONE forward pass per batch: the choices of a row form a token trie, its
nodes are appended after the prompt's cached states, and a tree attention mask lets each node see
the prompt and its own ancestors only (positions = prompt length + depth). The appended states are
cropped afterwards.

The choice policy (GLAM, arXiv:2302.02662; TWOSOME, arXiv:2401.14151) is the distribution the
decoder samples from, written with C_s the admissible actions of state s:

    score(a) = log p(a's tokens, end-of-turn | s)            (agent.choice_score: sum)
             = that / (|a's tokens| + 1)                       (mean: TWOSOME's length normalisation)
    π_T(a|s) = exp(score(a)/T) / Σ_{c ∈ C_s} exp(score(c)/T)

A rollout records log π_T of the action it took (`choice_logprob`); GRPO (`krill.train.samples`)
recomputes it teacher-forced with `step_choice_scores`, which runs the same trie pass for every step
of an episode at once over the episode's own KV states, so the update trains the policy that acted.
The per-token log-probs of the chosen action are recorded too (token-level GRPO still reads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from krill.models.static_decode import seek


@dataclass
class ChoiceTrie:
    """The choices' token trie: node i holds `tokens[i]`, its `parents[i]` (-1 = first token) and `depths[i]`."""

    choices: list[tuple[int, ...]]
    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # node of each choice's last token
    _ancestry: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, choices: Sequence[Sequence[int]]) -> ChoiceTrie:
        trie = cls([tuple(c) for c in choices if c])
        index: dict[tuple[int, ...], int] = {}
        for choice in trie.choices:
            for k in range(len(choice)):
                key = choice[: k + 1]
                if key not in index:
                    index[key] = len(trie.tokens)
                    trie.tokens.append(choice[k])
                    trie.parents.append(index[choice[:k]] if k else -1)
                    trie.depths.append(k)
            trie.ends.append(index[choice])
        return trie

    def ancestry(self) -> torch.Tensor:
        """[n, n] bool: node i may attend to node j (j is i or one of its ancestors). Built once."""
        if self._ancestry is None:
            # one level of ancestors per pass, every node at once (a trie is a few levels deep; a loop over
            # nodes was ~90 small tensor ops per trie, the largest host cost of a constrained step)
            n = len(self.tokens)
            parents = np.asarray(self.parents, dtype=np.int64)
            seen, node, up = np.eye(n, dtype=bool), np.arange(n), parents.copy()
            while (has := up >= 0).any():
                seen[node[has], up[has]] = True
                up[has] = parents[up[has]]
            self._ancestry = torch.from_numpy(seen)
        return self._ancestry


def trie_logprobs(trie: ChoiceTrie, first_logits: torch.Tensor, node_logits: torch.Tensor, end: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(log p(node's token | its parent) [n], log p(end-of-turn | each choice's last node) [C]) from raw
    logits: `first_logits` [V] after the prompt, `node_logits` [n, V] after each trie node."""
    first = torch.log_softmax(first_logits.float(), dim=-1)  # [V]
    nodes = torch.log_softmax(node_logits.float(), dim=-1)  # [n, V]
    after = torch.cat([first[None], nodes])  # [n+1, V]: row 0 follows the prompt, row i+1 node i
    parents = torch.tensor(trie.parents, device=after.device)  # [n]
    token_lp = after[parents + 1, torch.tensor(trie.tokens, device=after.device)]  # [n]
    return token_lp, nodes[torch.tensor(trie.ends, device=after.device), end]


def choice_scores(trie: ChoiceTrie, first_logits: torch.Tensor, node_logits: torch.Tensor, end: int,
                  mode: str = "sum") -> torch.Tensor:  # fmt: skip
    """score(c) of every choice [C] from raw logits (see `trie_logprobs`). Differentiable: GRPO calls
    it on logits that carry gradients."""
    return _scores(trie, *trie_logprobs(trie, first_logits, node_logits, end), mode)


def _scores(trie: ChoiceTrie, token_lp: torch.Tensor, end_lp: torch.Tensor, mode: str) -> torch.Tensor:
    path = trie.ancestry().to(token_lp.device, token_lp.dtype) @ token_lp  # [n] summed along each node's path
    scores = path[torch.tensor(trie.ends, device=token_lp.device)] + end_lp  # [C] + log p(end-of-turn)
    if mode == "mean":  # TWOSOME: long actions are not penalised for their length
        scores = scores / torch.tensor([len(c) + 1 for c in trie.choices], device=token_lp.device)
    return scores


def choice_logprobs(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """log π_T(c|s) of every choice [C]: a log-softmax of the scores at temperature T (T ≤ 0: greedy
    decoding, recorded at T = 1)."""
    return torch.log_softmax(scores / (temperature if temperature > 0 else 1.0), dim=-1)


@dataclass
class Pick:
    """A row's chosen action: its token ids (ending with end-of-turn), their per-token log-probs, its
    index among the choices and log π_T of that choice."""

    token_ids: list[int]
    logprobs: list[float]
    index: int
    choice_logprob: float


def pick_choices(
    model,
    cache,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    first_logits: torch.Tensor,
    tries: list[ChoiceTrie | None],
    end_of_turn: int,
    cache_kw: str,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    mode: str = "sum",
    order: list[int] | None = None,
) -> list[Pick | None]:
    """The chosen action of each row with a trie (None for rows without): the best (greedy) or one
    sampled from π_T. `cache` holds the prompts' states (a growing cache is left as it was on return; a
    static cache gets the nodes in its columns from K on, outside the prompts' mask); `attention_mask`
    [B, K] and `positions` [B, S] are the prefill's; `first_logits` [B, V] its last. `order`: the batch
    positions in their rows' order (default: as they are)."""
    B, K = attention_mask.shape
    T = max(len(t.tokens) if t else 1 for t in tries)
    device = attention_mask.device
    ids = torch.zeros((B, T), dtype=torch.long)
    pos = torch.zeros((B, T), dtype=torch.long)
    tree = torch.zeros((B, T, T), dtype=torch.bool)
    tree[:] = torch.eye(T, dtype=torch.bool)  # padding nodes see themselves (no empty softmax rows)
    last = positions[:, -1].cpu()
    for b, t in enumerate(tries):
        if t:
            n = len(t.tokens)
            ids[b, :n] = torch.tensor(t.tokens)
            pos[b, :n] = last[b] + 1 + torch.tensor(t.depths)
            tree[b, :n, :n] = t.ancestry()
    # built where the prompt's mask is: [B, 1, T, K] of it is the biggest tensor of the pass
    mask = torch.cat([attention_mask.bool()[:, None, :].expand(B, T, K), tree.to(device)], dim=-1)[:, None]
    width = getattr(cache.layers[0], "max_cache_len", None)  # a static cache attends over all its columns
    if width is not None:
        mask = torch.nn.functional.pad(mask, (0, width - K - T))
        seek(cache, K)  # its nodes are written at its counter, wherever the caller's writes left it
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask,  # [B, 1, T, K+T]: the prompt, then the node's own path
        position_ids=pos.to(device),
        use_cache=True,
        **{cache_kw: cache},
    )
    if width is None:
        cache.crop(-T)
    node_logits = out.logits.float().cpu()  # [B, T, V]: after each node
    first = first_logits.float().cpu()  # [B, V]: after the prompt
    picks: list[Pick | None] = [None] * B
    for b in order if order is not None else range(B):  # a generator's draws go to the rows in this order
        if tries[b]:
            picks[b] = _pick(tries[b], first[b], node_logits[b, : len(tries[b].tokens)], end_of_turn, temperature,
                             generator, mode)  # fmt: skip
    return picks


def _pick(trie: ChoiceTrie, first_logits, node_logits, end: int, temperature: float, generator, mode) -> Pick:
    """Score every choice (its tokens, then end-of-turn) and take the best or sample one from π_T."""
    token_lp, end_lp = trie_logprobs(trie, first_logits, node_logits, end)
    scores = _scores(trie, token_lp, end_lp, mode)  # [C]
    logp = choice_logprobs(scores, temperature)  # [C]
    if temperature <= 0:
        k = int(scores.argmax())
    else:
        probs = logp.exp()
        k = int(torch.multinomial(probs.to(generator.device) if generator else probs, 1, generator=generator))
    path, i = [], trie.ends[k]
    while i >= 0:
        path.append(i)
        i = trie.parents[i]
    recorded = [float(token_lp[i]) for i in reversed(path)] + [float(end_lp[k])]
    return Pick([*trie.choices[k], end], recorded, k, float(logp[k]))


@dataclass
class StepOptions:
    """One decision inside a token row: the prompt is `row[:end]`; `options` are the admissible actions' ids."""

    end: int
    options: list[list[int]]


def step_choice_scores(model, rows: list[list[int]], steps: list[list[StepOptions]], pad_id: int, end: int,
                       cache_kw: str, mode: str = "sum") -> list[list[torch.Tensor]]:  # fmt: skip
    """score(c) of every option [C] of every step of every row, teacher-forced, gradients kept.

    Two forward passes for the whole batch, whatever the number of steps: the rows (left-padded) fill
    a KV cache; then every step's block [root, trie nodes] is appended, where the root repeats the
    last prompt token (its output is the first-token distribution) and each node sees its row up to
    the root's position, the root and its own trie ancestors. One episode of 12 steps is one pass.
    """
    from transformers import DynamicCache

    from krill.models.logprobs import left_pad

    device = next(model.parameters()).device
    ids, attn = left_pad(rows, pad_id, device)  # [B, L]
    B, L = ids.shape
    positions = (attn.cumsum(-1) - 1).clamp(min=0)  # [B, L]
    cache = DynamicCache(config=model.config)
    model(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=True, logits_to_keep=1,
          **{cache_kw: cache})  # fmt: skip
    tries = [[ChoiceTrie.build(s.options) for s in row] for row in steps]
    N = max([sum(1 + len(t.tokens) for t in row) for row in tries] + [1])
    node_ids = torch.zeros((B, N), dtype=torch.long)
    node_pos = torch.zeros((B, N), dtype=torch.long)
    mask = torch.zeros((B, N, L + N), dtype=torch.bool)
    mask[:, :, L:] = torch.eye(N, dtype=torch.bool)  # every node sees itself (padding nodes: only that)
    ids_cpu, attn_cpu, pos_cpu = ids.cpu(), attn.cpu().bool(), positions.cpu()
    roots: list[list[int]] = []
    for b, (row, row_steps) in enumerate(zip(tries, steps, strict=True)):
        at, pad, roots_b = 0, L - len(rows[b]), []
        for trie, step in zip(row, row_steps, strict=True):
            e, n = pad + step.end - 1, len(trie.tokens)  # e: the root's padded position
            block = slice(at, at + 1 + n)
            node_ids[b, at], node_pos[b, at] = ids_cpu[b, e], pos_cpu[b, e]
            node_ids[b, at + 1 : at + 1 + n] = torch.tensor(trie.tokens, dtype=torch.long)
            node_pos[b, at + 1 : at + 1 + n] = pos_cpu[b, e] + 1 + torch.tensor(trie.depths, dtype=torch.long)
            mask[b, block, :e] = attn_cpu[b, :e]  # the prompt before the root
            mask[b, block, L + at] = True  # the root
            mask[b, at + 1 : at + 1 + n, L + at + 1 : L + at + 1 + n] = trie.ancestry()
            roots_b.append(at)
            at += 1 + n
        roots.append(roots_b)
    out = model(input_ids=node_ids.to(device), attention_mask=mask[:, None].to(device),
                position_ids=node_pos.to(device), use_cache=True, **{cache_kw: cache})  # fmt: skip
    logits = out.logits  # [B, N, V]
    return [
        [
            choice_scores(t, logits[b, r], logits[b, r + 1 : r + 1 + len(t.tokens)], end, mode)
            for t, r in zip(row, roots[b], strict=True)
        ]  # fmt: skip
        for b, row in enumerate(tries)
    ]
