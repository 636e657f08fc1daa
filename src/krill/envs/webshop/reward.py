"""WebShop's reward (Yao et al. 2022; `web_agent_site/engine/goal.py`), as pure functions.

    r = r_type · (|U_att ∩ Y_att| + |U_opt ∩ Y_opt| + 1[y_price ≤ u_price]) / (|U_att| + |U_opt| + 1)

Faithful to the original, including its fuzzy matching (`thefuzz.fuzz.token_set_ratio > 85`,
re-implemented here exactly as rapidfuzz computes it) and colour normalisation, so its quirks
carry over: option "x-large" satisfies goal "large" (token-set score 100), "6.5" satisfies "6".

One documented simplification: the original finds the *nouns* of the two titles with spaCy
(`en_core_web_sm`, POS in NOUN/PROPN). spaCy's model is not available offline, so `title_nouns`
keeps a title's content words that are not function words, numbers or known modifiers
(`vocab.TITLE_ADJECTIVES`); the generated titles are built from those vocabularies, so this
separates what a product is ("wallet", "leather") from how it is described ("slim", "premium").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from krill.envs.webshop.vocab import TITLE_ADJECTIVES

FUZZY_THRESHOLD = 85  # goal.py: `if score > 85`

# web_agent_site/engine/normalize.py COLOR_SET (order matters: the first substring found wins).
COLOR_SET = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue",
    "blush", "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne",
    "charcoal", "cheetah", "chestnut", "chocolate", "christmas", "coffee", "cognac", "copper", "coral",
    "cranberry", "cream", "crystal", "dark", "denim", "eggplant", "elephant", "espresso", "fuchsia",
    "gold", "granite", "grape", "graphite", "grass", "gray", "green", "grey", "heather", "indigo",
    "ivory", "ivy", "khaki", "lavender", "lemon", "leopard", "light", "lilac", "lime", "magenta",
    "maroon", "mauve", "merlot", "midnight", "mint", "mocha", "multicolor", "mushroom", "mustard",
    "natural", "navy", "nude", "olive", "orange", "peach", "pewter", "pink", "plum", "purple",
    "rainbow", "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver", "skull",
    "slate", "steel", "stone", "stonewash", "sunflower", "tan", "taupe", "teal", "tiger", "turquoise",
    "violet", "walnut", "wheat", "white", "wine", "yellow",
)  # fmt: skip

_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the to with without "
    "your you our this these those per set pack piece pieces inch ft oz".split()
)
_NON_NOUNS = _STOPWORDS | frozenset(TITLE_ADJECTIVES)


class TypeReward(NamedTuple):
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float


class RewardInfo(NamedTuple):
    """The score and its parts, as the original's `verbose=True` returns them."""

    reward: float
    r_type: float
    r_att: float
    r_option: float | None
    r_price: bool
    num_attr_matches: int
    num_option_matches: int
    query_match: bool
    category_match: bool
    title_score: float


def normalize_color(text: str) -> str:
    """The first WebShop colour contained in `text`, else `text` unchanged.

    >>> normalize_color("navy blue")
    'blue'
    >>> normalize_color("x-large")
    'x-large'
    """
    for color in COLOR_SET:
        if color in text:
            return color
    return text


def _process(text: str) -> str:
    # rapidfuzz.utils.default_process: non-alphanumerics → space, lowercase, trim.
    return re.sub(r"[^0-9a-zA-Z]+", " ", text).lower().strip()


def _indel_distance(a: str, b: str) -> int:
    """Insertions + deletions turning a into b = len(a) + len(b) − 2·LCS(a, b)."""
    if not a or not b:
        return len(a) + len(b)
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return len(a) + len(b) - 2 * prev[-1]


def _norm_sim(dist: int, lensum: int) -> float:
    return 100.0 if lensum == 0 else 100.0 - 100.0 * dist / lensum


def token_set_ratio(s1: str, s2: str) -> int:
    """`thefuzz.fuzz.token_set_ratio` (rapidfuzz's algorithm, rounded to an int as thefuzz does).

    >>> token_set_ratio("cool powder snow", "powder snow")
    100
    >>> token_set_ratio("essential oil", "essential oils")
    96
    >>> token_set_ratio("red", "blue")
    29
    """
    a, b = set(_process(s1).split()), set(_process(s2).split())
    if not a or not b:
        return 0
    sect = a & b
    diff_ab, diff_ba = " ".join(sorted(a - b)), " ".join(sorted(b - a))
    if sect and (not diff_ab or not diff_ba):
        return 100
    sect_len = len(" ".join(sorted(sect)))
    sep = 1 if sect_len else 0
    sect_ab_len, sect_ba_len = sect_len + sep + len(diff_ab), sect_len + sep + len(diff_ba)
    # sect+ab vs sect+ba differ only in their tails
    result = _norm_sim(_indel_distance(diff_ab, diff_ba), sect_ab_len + sect_ba_len)
    if sect_len:
        result = max(
            result,
            _norm_sim(sep + len(diff_ab), sect_len + sect_ab_len),
            _norm_sim(sep + len(diff_ba), sect_len + sect_ba_len),
        )
    return int(round(result))


def title_nouns(title: str) -> list[str]:
    """The noun-like words of a title (stand-in for spaCy's NOUN/PROPN tags; see module doc).

    >>> title_nouns("Hanes Soft Crew Neck T-Shirt for Men - Cotton, Breathable")
    ['hanes', 'crew', 'neck', 'shirt', 'men', 'cotton']
    """
    words = re.findall(r"[a-z][a-z']*", title.lower())
    return [w for w in words if len(w) > 1 and w not in _NON_NOUNS]


def type_reward(
    purchased_query: str,
    purchased_path: str,
    purchased_title: str,
    goal_query: str,
    goal_path: str,
    goal_name: str,
) -> TypeReward:
    """`get_type_reward`: does the purchased product have the goal's type?

    query match, ≥2 shared category-path elements, or title noun overlap > 0.2 keep r_type at 1
    (else 0.5); overlap < 0.1 gives 0.1 and no overlap 0.

    >>> type_reward("t-shirt", "a › b › c", "Gildan Cotton T-Shirt", "t-shirt", "a › b › c", "Hanes Crew T-Shirt").r_type
    1.0
    >>> type_reward("wallet", "x › y", "Fossil Leather Wallet", "t-shirt", "a › b", "Hanes Crew T-Shirt").r_type
    0.0
    """
    query_match = purchased_query == goal_query
    p_cat = {x.strip() for x in purchased_path.split("›")}
    g_cat = {x.strip() for x in goal_path.split("›")}
    category_match = len(p_cat & g_cat) >= 2
    p_nouns, g_nouns = set(title_nouns(purchased_title)), title_nouns(goal_name)
    title_score = 0.2 if not g_nouns else len(p_nouns & set(g_nouns)) / len(g_nouns)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return TypeReward(r_type, query_match, category_match, title_score)


def attribute_matches(
    goal_attrs: Iterable[str],
    product_attrs: Iterable[str],
    title: str,
    bullets: Iterable[str],
    description: str,
) -> int:
    """`get_attribute_reward`: goal attributes fuzzily in the product's attributes, or literally in
    its title, bullet points or description.

    >>> attribute_matches(["tea tree", "essential oils"], ["essential oil"], "", [], "smells of tea tree")
    2
    """
    product_attrs = list(product_attrs)
    texts = (title.lower(), " ".join(bullets).lower(), description.lower())
    n = 0
    for g in goal_attrs:
        if any(token_set_ratio(p, g) > FUZZY_THRESHOLD for p in product_attrs) or any(g in t for t in texts):
            n += 1
    return n


def option_matches(goal_options: Iterable[str], purchased_options: Iterable[str]) -> int:
    """`get_option_reward`: goal option values matched (after colour normalisation, fuzzily) by
    some purchased option value.

    >>> option_matches(["grey", "xl", "pack of 12"], ["pack of 12", "blue", "xl"])
    2
    """
    purchased = [normalize_color(o) for o in purchased_options]
    n = 0
    for g in (normalize_color(o) for o in goal_options):
        if any(token_set_ratio(p, g) > FUZZY_THRESHOLD for p in purchased):
            n += 1
    return n


def get_reward(product, goal, price: float, options: Mapping[str, str]) -> RewardInfo:
    """The WebShop score of buying `product` at `price` with the selected `options` for `goal`.

    `product` needs query, product_category, title, attributes, bullets, description;
    `goal` needs query, product_category, name, attributes, options (name → value), price_upper.
    """
    t = type_reward(
        product.query, product.product_category, product.title, goal.query, goal.product_category, goal.name
    )
    n_att = attribute_matches(
        goal.attributes, product.attributes, product.title, product.bullets, product.description
    )
    n_opt = option_matches(list(goal.options.values()), list(options.values()))
    r_price = price <= goal.price_upper
    n_goal_att, n_goal_opt = len(goal.attributes), len(goal.options)
    # r = r_type · (|U_att ∩ Y_att| + |U_opt ∩ Y_opt| + 1[y_price ≤ u_price]) / (|U_att| + |U_opt| + 1)
    total = (n_att + n_opt + int(r_price)) / (n_goal_att + n_goal_opt + 1)
    return RewardInfo(
        reward=total * t.r_type,
        r_type=t.r_type,
        r_att=n_att / n_goal_att if n_goal_att else 0.0,
        r_option=n_opt / n_goal_opt if n_goal_opt else None,
        r_price=r_price,
        num_attr_matches=n_att,
        num_option_matches=n_opt,
        query_match=t.query_match,
        category_match=t.category_match,
        title_score=t.title_score,
    )
