"""The analytic teacher for WebShop (search[...] / click[...]): simpler than ALFWorld, same idea.

Successes give query formulation, option selection before Buy Now and price checks; failures
give modes (never bought, bought without options, repeated searches, invalid clicks).
"""

from __future__ import annotations

import re
from collections import Counter

from krill.schema import GENERAL, Skill, Trajectory
from krill.skills.teachers.proposals import Proposals, make_mistake, make_skill
from krill.skills.trajectory_facts import categories_of
from krill.skills.trajectory_text import action_validity

_STOP = set("i a an the and or of for with to in on is that it my me need want looking am be under less than "
            "price dollars lower not more please find buy some which".split())  # fmt: skip
_NAV = ("buy now", "next >", "< prev", "back to search", "description", "features", "reviews", "search")


def _ws_words(text: str) -> set[str]:
    return {
        w
        for w in re.findall(r"[a-z0-9\-]+", text.lower())
        if w not in _STOP and not w.replace(".", "").isdigit()
    }


def _ws_facts(t: Trajectory) -> dict:
    acts = [s.action.strip().lower() for s in t.steps]
    queries = [a[7:-1] for a in acts if a.startswith("search[")]
    clicks = [a[6:-1] for a in acts if a.startswith("click[")]
    item_i = next((i for i, c in enumerate(clicks) if re.fullmatch(r"b0[0-9a-z]{8}", c)), None)
    after_item = clicks[item_i + 1 :] if item_i is not None else []
    options = [c for c in after_item if c not in _NAV and not re.fullmatch(r"b0[0-9a-z]{8}", c)]
    want = _ws_words(t.task_description.split("Instruction:")[-1])
    q = _ws_words(queries[0]) if queries else set()
    return {
        "queries": queries, "bought": "buy now" in clicks, "options": options,
        "overlap": len(q & want) / max(1, len(want)), "qlen": len(queries[0].split()) if queries else 0,
        "pages": sum(1 for c in clicks if c == "next >"),
        "price_limit": bool(re.search(r"(?:lower|less) than \$?\d", t.task_description.lower())),
        "invalid": action_validity(t).count(False),
    }  # fmt: skip


# failure mode → how to avoid it (`{limit}`: the step limit)
_MODE_FIX = {
    "never bought (step limit)": "with {limit} steps, open the best matching result at once and buy after setting options",
    "bought without choosing options": "click the size/color/style options the instruction names before Buy Now",
    "searched three or more times": "write one query with product type + key attributes and pick from its results",
    "invalid clicks": "click only elements shown on the current page, spelled exactly as shown",
}  # fmt: skip


def webshop_proposals(trajs: list[Trajectory], step_limit: int) -> Proposals:
    """Query formulation, option selection before Buy Now and price checks (successes); failure modes."""
    cats = categories_of(trajs)
    facts = {t.id: _ws_facts(t) for t in trajs}

    def cat_for(ids: list[str]) -> str:
        found = {cats[i] for i in ids}
        return GENERAL if len(found) >= 2 else (found.pop() if found else "other")

    wins = [t for t in trajs if t.success]
    out = Proposals(skills=_success_skills(wins, facts, cat_for) if wins else [])
    out.extend(_failure_proposals([t for t in trajs if not t.success], facts, cat_for, step_limit))
    return out


def _success_skills(wins: list[Trajectory], facts: dict[str, dict], cat_for) -> list[Skill]:
    f = [facts[t.id] for t in wins]
    ids = [t.id for t in wins]
    avg_len = sum(x["qlen"] for x in f) / len(f)
    avg_ov = 100 * sum(x["overlap"] for x in f) / len(f)
    ex = next((x["queries"][0] for x in f if x["queries"]), "")
    found = [(
        "Search with the product type and key attributes",
        f"The first query of {len(wins)} successful purchases had {avg_len:.1f} words covering {avg_ov:.0f}% of "
        f"the instruction's key words (e.g. 'search[{ex}]'); {sum(len(x['queries']) == 1 for x in f)} needed no "
        f"second search.", "Starting a WebShop task: writing the search query", ids)]  # fmt: skip
    opt = [t.id for t in wins if facts[t.id]["options"]]
    if opt:
        top = Counter(o for t in wins for o in facts[t.id]["options"]).most_common(4)
        found.append((
            "Select every requested option before Buy Now",
            f"{len(opt)} of {len(wins)} successful purchases clicked options on the item page before "
            f"'Buy Now' (e.g. {', '.join(o for o, _ in top)}); each option named in the instruction counts "
            f"toward the reward.", "On an item page, before clicking Buy Now", opt))  # fmt: skip
    priced = [t.id for t in wins if facts[t.id]["price_limit"]]
    if priced:
        found.append((
            "Check the price against the limit",
            f"{len(priced)} successful purchases had a price limit in the instruction and bought an item "
            f"listed below it; compare the listed price with the limit before opening an item.",
            "The instruction says 'price lower than N dollars'", priced))  # fmt: skip
    return [
        make_skill(name, principle, when, cat_for(tids), tids, True) for name, principle, when, tids in found
    ]


def _failure_proposals(
    fails: list[Trajectory], facts: dict[str, dict], cat_for, step_limit: int
) -> Proposals:
    modes = {
        "never bought (step limit)": [t.id for t in fails if not facts[t.id]["bought"]],
        "bought without choosing options": [t.id for t in fails if facts[t.id]["bought"] and not facts[t.id]["options"]],
        "searched three or more times": [t.id for t in fails if len(facts[t.id]["queries"]) >= 3],
        "invalid clicks": [t.id for t in fails if facts[t.id]["invalid"] >= 2],
    }  # fmt: skip
    out = Proposals()
    for mode, ids in modes.items():
        if not ids:
            continue
        cat, how = cat_for(ids), _MODE_FIX[mode].format(limit=step_limit)
        what = f"{len(ids)} of {len(fails)} failed WebShop episodes {mode}"
        out.skills.append(make_skill(f"Avoid: {mode}", f"{what}. To avoid it, {how}.",
                                     f"WebShop episodes at risk: {mode}", cat, ids, False))  # fmt: skip
        out.mistakes.append(make_mistake(what, f"seen in {len(ids)} failures", how.capitalize() + ".",
                                         None if cat == GENERAL else cat, ids))  # fmt: skip
    return out
