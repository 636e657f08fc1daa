"""Search queries a WebShop agent can type, written from the instruction's own words: what the
constrained decoder offers for `search[...]` (`krill.agent.actors`), so a policy limited to whole
actions searches too."""

from __future__ import annotations

import re

_STOP = {"i", "a", "an", "the", "and", "or", "for", "with", "that", "is", "are", "of", "to", "in", "me", "my",
         "need", "want", "looking", "find", "would", "like", "help", "am", "some", "it", "be", "please"}  # fmt: skip


def search_queries(task: str, n: int = 3) -> list[str]:
    """Up to `n` search queries from a shopping instruction: its words before the price clause, then
    the content words only, then the first four of them.

    >>> search_queries("i need waterproof hiking shoes, and price lower than 60.00 dollars")
    ['i need waterproof hiking shoes', 'waterproof hiking shoes']
    """
    head = re.split(r",?\s*(?:and\s+)?price\b", task.strip(), maxsplit=1, flags=re.I)[0].strip(" ,.")
    words = [w for w in re.findall(r"[a-z0-9][a-z0-9\-&']*", head.lower()) if w not in _STOP]
    out: list[str] = []
    for q in (head, " ".join(words), " ".join(words[:4])):
        if q and q not in out:
            out.append(q)
    return out[:n]
