"""The WebShop expert: a privileged policy that knows the goal and plays the pages like a careful
shopper. It searches with the goal's words, pages through up to five result pages looking for the
target (or any product that would score 1 with the right options), opens it, selects the goal
options and buys. When the first search misses, it goes back and searches the target's title.
"""

from __future__ import annotations

from krill.envs.webshop import pages
from krill.envs.webshop.catalogue import Catalogue, Product
from krill.envs.webshop.goals import Goal
from krill.envs.webshop.reward import FUZZY_THRESHOLD, get_reward, normalize_color, token_set_ratio
from krill.envs.webshop.state import ITEM, RESULTS, SEARCH, SUB, Session

MAX_RESULT_PAGES = 5  # 50 results, 10 per page


def goal_query(goal: Goal) -> str:
    """The instruction without its price clause: what a person would type into the search box.

    >>> from types import SimpleNamespace as NS
    >>> goal_query(NS(instruction="i need a red hat, and price lower than 20.00 dollars"))
    'i need a red hat'
    """
    return goal.instruction.split(", and price lower than")[0]


def winning_options(product: Product, goal: Goal) -> dict[str, str] | None:
    """Options (group → value) that make buying `product` score 1 for `goal`, or None if none do."""
    chosen: dict[str, str] = {}
    for group, want in goal.options.items():
        if want in product.options.get(group, []):
            chosen[group] = want
            continue
        # an equally good product: a value the reward's fuzzy match accepts, in the same group
        match = next(
            (
                v
                for v in product.options.get(group, [])
                if token_set_ratio(normalize_color(v), normalize_color(want)) > FUZZY_THRESHOLD
            ),
            None,
        )
        if match is None:
            return None
        chosen[group] = match
    if get_reward(product, goal, product.price, chosen).reward < 1.0:
        return None
    return chosen


def expert_next_action(session: Session, goal: Goal, catalogue: Catalogue) -> str | None:
    """The expert's next action from `session` (None once the episode is over)."""
    s = session
    if s.page == SEARCH:
        return f"search[{goal_query(goal) if s.num_searches == 0 else catalogue.by_asin[goal.asin].title}]"
    if s.page == RESULTS:
        return _on_results(s, goal)
    if s.page == ITEM:
        return _on_item(s, goal, catalogue.by_asin[s.asin or ""])
    if s.page == SUB:
        return f"click[{pages.PREV_PAGE.lower()}]"
    return None


def _on_results(s: Session, goal: Goal) -> str:
    window = list(pages.page_window(s.results, s.page_num))
    # the target first, then any product that would also score 1
    for p in sorted(window, key=lambda p: p.asin != goal.asin):
        if p.asin == goal.asin or winning_options(p, goal) is not None:
            return f"click[{p.asin.lower()}]"
    if s.page_num * pages.PRODUCT_WINDOW < len(s.results) and s.page_num < MAX_RESULT_PAGES:
        return f"click[{pages.NEXT_PAGE.lower()}]"
    return f"click[{pages.BACK_TO_SEARCH.lower()}]"


def _on_item(s: Session, goal: Goal, product: Product) -> str:
    chosen = winning_options(product, goal)
    if chosen is None:  # not a product worth buying: back to the results
        return f"click[{pages.PREV_PAGE.lower()}]"
    for group, value in chosen.items():
        if s.options.get(group) != value:
            return f"click[{value}]"
    return f"click[{pages.END_BUTTON.lower()}]"
