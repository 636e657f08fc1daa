"""Task categories and their names in each format.

krill names: ALFWorld `Pick, PickTwo, Look, Clean, Heat, Cool`; WebShop categories as the official
bank names them. Official SkillRL banks and ALFWorld task types use other spellings; all map here.
Users with their own environments declare extra categories in config (`env.categories`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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


def category_from_task(task: str, known: Iterable[str] | None = None) -> str | None:
    """Infer a task's category from its wording: ALFWorld's task templates, or WebShop's product words.

    `known` (a bank's categories) limits the answer to those; None means any. A shopping goal
    ("i need …", "… price lower than 30.00 dollars") is read with the WebShop lexicon, anything
    else with the ALFWorld rules.

    >>> category_from_task("put a hot apple in fridge"), category_from_task("i need a leather wallet")
    ('Heat', 'accessories')
    """
    known = set(known) if known is not None else None
    shopping = bool(_SHOPPING.search(task.lower()))
    for guess in ((webshop_category(task), alfworld_category(task)) if shopping
                  else (alfworld_category(task), webshop_category(task))):  # fmt: skip
        if guess is not None and (known is None or guess in known):
            return guess
    return None


def alfworld_category(task: str) -> str | None:
    """ALFWorld category from task wording ("put a hot apple in fridge" → Heat).

    Order matters: pick-two ("put two …") before plain pick, the official code's keyword routing
    misfiled pick-two tasks as pick.
    """
    t = task.lower().strip()
    if "two " in t and t.startswith(("put two", "find two")):
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


# Shopping goals: WebShop's instruction leads and its price clause.
_SHOPPING = re.compile(
    r"^\s*(instruction:\s*)?i('m| am| need| want| would like)\b|price (lower|less) than|\bdollars\b"
)

# Product words per WebShop category (the official bank's keys), matched as whole words, plural or
# not. Written from general shopping vocabulary, not from krill's generated catalogue.
WEBSHOP_LEXICON: dict[str, tuple[str, ...]] = {
    "apparel": ("shirt", "t-shirt", "tee", "blouse", "top", "hoodie", "sweatshirt", "sweater", "cardigan",
                "jacket", "coat", "vest", "jeans", "pants", "trousers", "leggings", "shorts", "skirt", "dress",
                "pajama", "pajamas", "sleepwear", "underwear", "bra", "lingerie", "socks", "swimsuit",
                "bikini", "jumpsuit", "romper", "polo", "tank top", "joggers", "suit", "uniform"),
    "footwear": ("shoe", "shoes", "sneaker", "boot", "boots", "sandal", "slipper", "loafer", "heels", "pumps",
                 "flats", "clogs", "moccasin", "oxford", "cleats", "flip flops", "footwear"),
    "home_decor": ("pillow", "pillow cover", "cushion", "curtain", "drape", "rug", "carpet", "wall art",
                   "poster", "canvas print", "bed sheet", "sheet set", "bedding", "duvet", "comforter",
                   "blanket", "quilt", "lamp", "chandelier", "candle", "picture frame", "photo frame", "vase",
                   "mirror", "shelf", "furniture", "sofa", "chair", "table", "tablecloth", "decor", "ottoman"),
    "electronics": ("headphones", "headphone", "earbuds", "earphones", "speaker", "charger", "charging",
                    "cable", "usb", "usb-c", "hdmi", "power bank", "battery", "bluetooth", "wireless mouse",
                    "mouse", "keyboard", "camera", "monitor", "laptop", "tablet", "phone", "smartwatch",
                    "router", "adapter", "tv", "television", "microphone", "projector", "electronics"),
    "accessories": ("wallet", "purse", "handbag", "backpack", "tote", "bag", "sunglasses", "glasses", "watch",
                    "watch band", "cap", "hat", "beanie", "belt", "necklace", "bracelet", "earrings", "ring",
                    "jewelry", "scarf", "gloves", "tie", "umbrella", "keychain"),
    "beauty_health": ("shampoo", "conditioner", "moisturizer", "lotion", "cream", "serum", "lipstick",
                      "makeup", "mascara", "foundation", "nail polish", "perfume", "fragrance", "deodorant",
                      "toothbrush", "toothpaste", "skincare", "sunscreen", "cleanser", "soap", "hair",
                      "hair extensions", "brushes", "vitamin", "supplement", "razor", "beauty"),
    "other": ("coffee", "tea", "tea bags", "snack", "snacks", "bars", "food", "chocolate", "candy", "cookies", "protein",
              "dog", "cat", "pet", "toy", "yoga mat", "notebook", "pen", "grocery", "spice", "sauce"),
}  # fmt: skip
_LEXICON_RE = {
    cat: re.compile(r"\b(" + "|".join(re.escape(w) + "(e?s)?" for w in sorted(words, key=len, reverse=True)) + r")\b")
    for cat, words in WEBSHOP_LEXICON.items()
}  # fmt: skip


def webshop_category(goal: str) -> str | None:
    """The WebShop category of the product a goal names: its last product word before the details.

    WebShop goals name the product first and its details after "with"/"that is"/a comma; in
    that head, the last product word is the noun ("usb charging port laptop backpack" is a backpack,
    "herbal tea bags" tea bags); multi-word entries win over their parts.
    """
    text = goal.lower()
    head = re.split(r"\b(with|that is|that are|and price|price lower)\b|,", text, maxsplit=1)[0]
    for part in (head, text):
        # (end, length): the last word wins; of two ending together ("tea bags", "bags") the longer
        hits = [
            (m.end(), m.end() - m.start(), cat) for cat, rx in _LEXICON_RE.items() for m in rx.finditer(part)
        ]
        if hits:
            return max(hits)[2]
    return None
