"""`WebshopEnv`: WebShop's text environment over the generated catalogue (krill.envs.base.Env).

Actions are `search[query]` (on the search page) and `click[element]`, matched case-insensitively
against the page's clickables as `WebAgentTextEnv.step` does. Anything else is an invalid action:
observation "Nothing happens.", `info["valid"] = False`, state unchanged (one deviation from the
original, which also runs a search typed on a page without a search box; here search is admissible
only where the search box is, so `admissible_actions` and validity agree). The episode ends at
"Buy Now" with reward 10·score, or after `max_steps` (15) with reward 0.

Calibration on the 500 test goals (default catalogue): the expert scores 1.0 (success 100%); a
uniform random policy (search = 2–5 random instruction words) ≈ 0.17; WebShop's rule baseline
(search the instruction, buy the first result) scores 0.67 with success 10.4%, against 45.6 and
9.6% in the paper: success is as hard as on the real site (options must be chosen), but with ~40
products per type the first hit more often has the right type and attributes than among 1.18M.
"""

from __future__ import annotations

import random
import re
from typing import Any

from krill.envs.base import INVALID_OBSERVATION, register_env
from krill.envs.webshop import pages
from krill.envs.webshop.catalogue import Catalogue, Product, get_catalogue
from krill.envs.webshop.expert import expert_next_action
from krill.envs.webshop.goals import Goal, canonical_split, goals_for_split
from krill.envs.webshop.reward import RewardInfo, get_reward
from krill.envs.webshop.search import SearchEngine, get_search_engine
from krill.envs.webshop.state import DONE, ITEM, RESULTS, SEARCH, SUB, Session
from krill.errors import KrillError

_ACTION_RE = re.compile(r"^\s*(\w+)\s*\[(.+)\]\s*$", re.DOTALL)


def split_command(action: str) -> tuple[str, str | None]:
    """The original `engine.parse_action`: "click[Buy Now]" → ("click", "buy now"); no brackets → (action, None).

    >>> split_command("click[Buy Now]")
    ('click', 'buy now')
    >>> split_command("look")
    ('look', None)
    """
    m = _ACTION_RE.match(action or "")
    if m is None:
        return (action or "").strip().lower(), None
    return m.group(1).lower(), m.group(2).strip().lower()


class WebshopEnv:
    """A WebShop session per `reset`; see the module docstring for the action semantics."""

    name = "webshop"

    def __init__(
        self,
        split: str = "train",
        *,
        num_products: int = 2000,
        seed: int = 0,
        num_test_goals: int = 500,
        max_steps: int = 15,
    ):
        self.split = canonical_split(split)
        self.max_steps = max_steps
        self.catalogue: Catalogue = get_catalogue(num_products, seed)
        self.engine: SearchEngine = get_search_engine(self.catalogue)
        self.goals: tuple[Goal, ...] = goals_for_split(split, num_products, seed, num_test_goals)
        self._by_id = {g.task_id: g for g in self.goals}
        self._rng = random.Random(f"webshop-env-{split}-{seed}")
        self.goal: Goal | None = None
        self.session = Session()
        self.last_reward_info: RewardInfo | None = None

    # -- Env protocol -------------------------------------------------------------------------
    def task_ids(self) -> list[str]:
        return [g.task_id for g in self.goals]

    def task_category_of(self, task_id: str) -> str | None:
        """A goal's category without a reset (`krill eval --episodes N` stratifies by it)."""
        goal = self._by_id.get(task_id)
        return goal.category if goal else None

    def reset(self, task_id: str | None = None) -> tuple[str, dict[str, Any]]:
        if task_id is None:
            self.goal = self._rng.choice(self.goals)
        elif task_id in self._by_id:
            self.goal = self._by_id[task_id]
        else:
            raise KrillError(f"unknown WebShop task id {task_id!r} in split {self.split!r}")
        self.session = Session()
        self.last_reward_info = None
        obs = self._go_search()
        return obs, self._info(valid=True)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.goal is None:
            raise KrillError("WebshopEnv.step called before reset")
        s = self.session
        if s.done:
            return INVALID_OBSERVATION, 0.0, True, self._info(valid=False)
        s.steps += 1
        obs = self._apply(action)
        valid = obs is not None
        if obs is None:
            obs = INVALID_OBSERVATION
        reward = 10.0 * s.score if s.page == DONE else 0.0
        if s.steps >= self.max_steps:
            s.done = True
        return obs, reward, s.done, self._info(valid=valid)

    def expert_action(self) -> str | None:
        if self.goal is None or self.session.done:
            return None
        return expert_next_action(self.session, self.goal, self.catalogue)

    def close(self) -> None:
        pass

    # -- pages ----------------------------------------------------------------------------------
    def _apply(self, action: str) -> str | None:
        """Run one action; None when it is invalid (state untouched)."""
        s = self.session
        name, arg = split_command(action)
        if name == "search" and arg and s.page == SEARCH:
            return self._go_results(arg, 1, new_search=True)
        if name != "click" or not arg or arg not in s.clickables:
            return None
        if arg == pages.BACK_TO_SEARCH.lower():
            return self._go_search()
        if arg == pages.END_BUTTON.lower() and s.page == ITEM:
            return self._buy()
        if arg == pages.NEXT_PAGE.lower() and s.page == RESULTS:
            return self._go_results(s.keywords or "", s.page_num + 1)
        if arg == pages.PREV_PAGE.lower():
            if s.page == RESULTS:
                return self._go_results(s.keywords or "", s.page_num - 1)
            if s.page == ITEM:
                return self._go_results(s.keywords or "", s.page_num)
            return self._go_item(s.asin or "")
        if s.page == ITEM and arg in (p.lower() for p in pages.SUB_PAGES):
            return self._go_sub(arg.capitalize())
        if s.page == RESULTS:
            return self._go_item(arg.upper())
        if s.page == ITEM:
            return self._select_option(arg)
        return None

    def _go_search(self) -> str:
        s = self.session
        s.page, s.keywords, s.results, s.asin, s.options = SEARCH, None, [], None, {}
        s.clickables = []
        return pages.search_page(self.goal.instruction)

    def _go_results(self, keywords: str, page_num: int, new_search: bool = False) -> str:
        s = self.session
        if new_search:
            s.results = self.engine.search(keywords)
            s.num_searches += 1
        s.page, s.keywords, s.page_num, s.asin, s.options = RESULTS, keywords, page_num, None, {}
        window = pages.page_window(s.results, page_num)
        s.clickables = pages.results_clickables(page_num, window)
        return pages.results_page(self.goal.instruction, page_num, len(s.results), window)

    def _go_item(self, asin: str) -> str:
        s = self.session
        product = self.catalogue.by_asin[asin]
        s.page, s.asin, s.sub = ITEM, asin, None
        s.clickables = pages.item_clickables(product)
        return pages.item_page(self.goal.instruction, product)

    def _go_sub(self, which: str) -> str:
        s = self.session
        s.page, s.sub = SUB, which
        s.clickables = pages.sub_clickables()
        return pages.sub_page(self.goal.instruction, self._product(), which)

    def _select_option(self, value: str) -> str | None:
        product = self._product()
        group = _group_of(product, value)
        if group is None:
            return None
        self.session.options[group] = value
        return pages.item_page(self.goal.instruction, product)

    def _buy(self) -> str:
        s = self.session
        product = self._product()
        info = get_reward(product, self.goal, product.price, s.options)
        self.last_reward_info = info
        s.page, s.score, s.done, s.clickables = DONE, info.reward, True, []
        return pages.done_page(info.reward)

    def _product(self) -> Product:
        return self.catalogue.by_asin[self.session.asin or ""]

    def _info(self, valid: bool) -> dict[str, Any]:
        s, g = self.session, self.goal
        return {
            "task_id": g.task_id,
            "task_description": g.instruction,
            "task_category": g.category,
            "admissible_actions": admissible_actions(s),
            "won": s.page == DONE and s.score >= 1.0,
            "valid": valid,
            "score": s.score,
        }


def _group_of(product: Product, value: str) -> str | None:
    # The original maps clickable text → the last radio input with that value (a dict overwrite).
    group = None
    for name, values in product.options.items():
        if value in values:
            group = name
    return group


def admissible_actions(session: Session) -> list[str]:
    """`search[...]` where the search box is, then one `click[x]` per clickable."""
    head = [pages.SEARCH_TEMPLATE] if session.page == SEARCH else []
    return head + [f"click[{c}]" for c in session.clickables]


@register_env("webshop")
def make_webshop_env(split: str = "train", cfg=None, **kw: Any) -> WebshopEnv:
    """Build from config (`env.webshop.*`, `env.seed`); keyword arguments override it."""
    if cfg is not None:
        ws = cfg.env.webshop
        kw.setdefault("num_products", ws.num_products)
        kw.setdefault("num_test_goals", ws.num_test_goals)
        kw.setdefault("max_steps", ws.max_steps)
        kw.setdefault("seed", cfg.env.seed)
    return WebshopEnv(split, **kw)


__all__ = ["WebshopEnv", "admissible_actions", "make_webshop_env", "split_command", "SUB", "DONE"]
