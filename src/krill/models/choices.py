"""Decode only one of a row's given choices (the env's admissible actions): a token-prefix mask.

A small model's commonest failure is an action that is not in the room (`go to sofa 2` in a kitchen),
repeated until the step cap. With `agent.constrain_actions` the local decoder masks, at every step,
every token that would leave all of the row's choices, and allows end-of-turn only once the text so
far *is* a choice. Greedy decoding then yields the greedy path through the choice trie, not the
most likely choice overall (that would score every choice: one forward pass each).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ChoiceConstraint:
    """The next tokens allowed after `prefix` when the answer must be one of `choices` (token ids)."""

    def __init__(self, choices: Sequence[Sequence[int]], terminators: set[int]):
        self.choices = [tuple(c) for c in choices if c]
        self.terminators = set(terminators)

    def allowed(self, prefix: Sequence[int]) -> set[int]:
        """Tokens continuing some choice; end-of-turn where the prefix is a whole choice."""
        k, prefix = len(prefix), tuple(prefix)
        nxt = {c[k] for c in self.choices if len(c) > k and c[:k] == prefix}
        if prefix in self.choices:
            nxt |= self.terminators
        return nxt

    def completion(self, prefix: Sequence[int]) -> tuple[int, ...] | None:
        """The rest of the only choice `prefix` can still become (None while several can, or none):
        every later token is forced, so a decoder that needs no log-probs can stop here."""
        k, prefix = len(prefix), tuple(prefix)
        left = [c for c in self.choices if len(c) >= k and c[:k] == prefix]
        return left[0][k:] if len(left) == 1 else None


def choice_mask(
    constraints: Sequence[ChoiceConstraint | None], prefixes: Sequence[Sequence[int]], logits: torch.Tensor
) -> torch.Tensor:
    """[B, V] bool: True where a token may be chosen. Unconstrained rows (None) allow everything,
    and so does a row whose prefix left its choices (cannot happen under the mask; never a dead end)."""
    mask = torch.ones_like(logits, dtype=torch.bool)
    for b, (con, prefix) in enumerate(zip(constraints, prefixes, strict=True)):
        allowed = con.allowed(prefix) if con is not None else None
        if allowed:
            mask[b] = False
            mask[b, sorted(allowed)] = True
    return mask
