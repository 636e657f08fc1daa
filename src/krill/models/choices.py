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
cropped afterwards. Recorded log-probs are the model's own per-token log-probs of the chosen action,
the same numbers teacher-forced scoring (`LocalPolicy.score`, GRPO) recomputes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class ChoiceTrie:
    """The choices' token trie: node i holds `tokens[i]`, its `parents[i]` (-1 = first token) and `depths[i]`."""

    choices: list[tuple[int, ...]]
    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # node of each choice's last token

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
        """[n, n] bool: node i may attend to node j (j is i or one of its ancestors)."""
        n = len(self.tokens)
        seen = torch.eye(n, dtype=torch.bool)
        for i in range(n):
            if self.parents[i] >= 0:
                seen[i] |= seen[self.parents[i]]
        return seen


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
) -> list[tuple[list[int], list[float]] | None]:
    """(token ids ending with `end_of_turn`, their log-probs) of the chosen action of each row with a
    trie (None for rows without). `cache` holds the prompts' states (left as it was on return);
    `attention_mask` [B, K] and `positions` [B, S] are the prefill's; `first_logits` [B, V] its last."""
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
    mask = torch.cat([attention_mask.bool()[:, None, :].expand(B, T, K).cpu(), tree], dim=-1)[:, None]
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),  # [B, 1, T, K+T]: the prompt, then the node's own path
        position_ids=pos.to(device),
        use_cache=True,
        **{cache_kw: cache},
    )
    cache.crop(-T)
    node_logp = torch.log_softmax(out.logits.float(), dim=-1).cpu()  # [B, T, V]: after each node
    first_logp = torch.log_softmax(first_logits.float(), dim=-1).cpu()  # [B, V]: after the prompt
    return [
        _pick(t, first_logp[b], node_logp[b], end_of_turn, temperature, generator) if t else None
        for b, t in enumerate(tries)
    ]


def _pick(trie: ChoiceTrie, first_logp, node_logp, end: int, temperature: float, generator):
    """Score every choice (its tokens, then end-of-turn) and take the best or sample one."""
    token_lp = [
        float((first_logp if p < 0 else node_logp[p])[tok])
        for tok, p in zip(trie.tokens, trie.parents, strict=True)
    ]
    path = [0.0] * len(token_lp)  # nodes come after their parents: one pass sums each path
    for i, (lp, p) in enumerate(zip(token_lp, trie.parents, strict=True)):
        path[i] = lp + (path[p] if p >= 0 else 0.0)
    scores = torch.tensor([path[e] + float(node_logp[e][end]) for e in trie.ends])
    if temperature <= 0:
        k = int(scores.argmax())
    else:
        probs = torch.softmax(scores / temperature, -1)
        k = int(torch.multinomial(probs.to(generator.device) if generator else probs, 1, generator=generator))
    nodes, i = [], trie.ends[k]
    while i >= 0:
        nodes.append(i)
        i = trie.parents[i]
    nodes.reverse()
    return [*trie.choices[k], end], [token_lp[i] for i in nodes] + [float(node_logp[trie.ends[k]][end])]
