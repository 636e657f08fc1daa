"""Task categories and their names in each format.

krill names: ALFWorld `Pick, PickTwo, Look, Clean, Heat, Cool`; WebShop categories as the official
bank names them. Official SkillRL banks and ALFWorld task types use other spellings; all map here.
Users with their own environments declare extra categories in config (`env.categories`).
"""

from __future__ import annotations

from krill.errors import KrillError

ALFWORLD_CATEGORIES = ("Pick", "PickTwo", "Look", "Clean", "Heat", "Cool")
WEBSHOP_CATEGORIES = (
    "apparel", "footwear", "home_decor", "electronics", "accessories", "beauty_health", "other", "search",
)  # fmt: skip

# ALFWorld task types (the game folder prefixes) → krill category.
ALFWORLD_TASK_TYPES = {
    "pick_and_place_simple": "Pick",
    "pick_two_obj_and_place": "PickTwo",
    "look_at_obj_in_light": "Look",
    "pick_clean_then_place_in_recep": "Clean",
    "pick_heat_then_place_in_recep": "Heat",
    "pick_cool_then_place_in_recep": "Cool",
}

# Official SkillRL bank keys (not uniform: no pick-two, and both look_at_obj_in_light and examine).
OFFICIAL_TO_KRILL = {
    "pick_and_place": "Pick",
    "pick_two_obj_and_place": "PickTwo",
    "look_at_obj_in_light": "Look",
    "examine": "Look",
    "clean": "Clean",
    "heat": "Heat",
    "cool": "Cool",
    **ALFWORLD_TASK_TYPES,
}
KRILL_TO_OFFICIAL = {
    "Pick": "pick_and_place",
    "PickTwo": "pick_two_obj_and_place",
    "Look": "look_at_obj_in_light",
    "Clean": "clean",
    "Heat": "heat",
    "Cool": "cool",
}

_extra: list[str] = []


def register_categories(names: list[str]) -> None:
    """Declare extra categories for user environments (from `env.categories` in config)."""
    for n in names:
        if n not in _extra:
            _extra.append(n)


def known_categories() -> list[str]:
    return [*ALFWORLD_CATEGORIES, *WEBSHOP_CATEGORIES, *_extra]


def normalize_category(name: str, *, path: str | None = None, where: str | None = None) -> str:
    """Map any known spelling (krill, official, ALFWorld task type, any case) to the krill name."""
    if not isinstance(name, str):
        raise KrillError(f"category must be a string, got {type(name).__name__}", path=path, where=where)
    for cat in known_categories():
        if name == cat:
            return cat
    key = name.strip()
    low = key.lower()
    if low in OFFICIAL_TO_KRILL:
        return OFFICIAL_TO_KRILL[low]
    for cat in known_categories():
        if low == cat.lower() or low.replace("_", "") == cat.lower():
            return cat
    raise KrillError(
        f"unknown category {name!r}; known: {', '.join(known_categories())} "
        "(declare your own in config env.categories)",
        path=path,
        where=where,
    )


def official_name(category: str) -> str:
    return KRILL_TO_OFFICIAL.get(category, category)


def category_from_task(task: str) -> str | None:
    """Infer an ALFWorld category from task wording ("put a hot apple in fridge" → Heat).

    Order matters: pick-two ("put two …") before plain pick, the official code's keyword routing
    misfiled pick-two tasks as pick.
    """
    t = task.lower()
    if "two " in t and t.strip().startswith(("put two", "find two")):
        return "PickTwo"
    if t.startswith(("look at", "examine")) or "under the desklamp" in t or "under the floorlamp" in t:
        return "Look"
    if "clean" in t:
        return "Clean"
    if "hot" in t or "heat" in t:
        return "Heat"
    if "cool" in t or "cold" in t:
        return "Cool"
    if t.startswith(("put", "find", "place")):
        return "Pick"
    return None
