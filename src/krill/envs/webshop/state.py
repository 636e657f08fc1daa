"""One shopping session's browser state (the original keeps the same fields in `user_sessions`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from krill.envs.webshop.catalogue import Product

SEARCH, RESULTS, ITEM, SUB, DONE = "search", "results", "item", "sub", "done"


@dataclass
class Session:
    page: str = SEARCH
    keywords: str | None = None
    results: list[Product] = field(default_factory=list)  # all hits of the last search (≤ 50)
    page_num: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)  # option group → selected value
    sub: str | None = None  # Description | Features | Reviews
    clickables: list[str] = field(default_factory=list)
    num_searches: int = 0
    steps: int = 0
    score: float = 0.0
    done: bool = False
