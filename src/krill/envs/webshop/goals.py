"""Shopping goals generated from catalogue products, split train / valid / test by product.

Like WebShop's goals (`engine/goal.py`), a goal remembers its target product's asin, query, category
path and title (`name`), a subset of its attributes, one value for some of its option groups, and a
price bound drawn as WebShop does (`PRICE_RANGE`, two of the next four multiples of 10 above the
price, keep the larger). Splits are disjoint in *products*, so no test target is seen in training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from krill.envs.webshop import vocab
from krill.envs.webshop.catalogue import Catalogue, Product, get_catalogue
from krill.errors import KrillError

SPLITS = ("train", "valid", "test")
# ALFWorld's split names, so split-agnostic callers (evaluation defaults to valid_unseen, evolution
# validates on valid_seen) work on WebShop too: both are product-disjoint from train.
SPLIT_ALIASES = {"valid_seen": "valid", "valid_unseen": "test", "eval": "test"}
PRICE_RANGE = [10.0 * i for i in range(1, 100)]  # goal.py
NO_PRICE_LIMIT = 1_000_000.0  # goal.py uses 1000000 when no bound is stated
NUM_VALID_GOALS = 200
TRAIN_GOALS_PER_PRODUCT = 2

_LEADS = [
    "i need",
    "i am looking for",
    "i want",
    "i'm looking for",
    "find me",
    "i would like",
    "help me find",
]
_OPTION_WORDS = {
    "color": "color",
    "scent": "scent",
    "flavor name": "flavor",
    "capacity": "capacity",
    "style": "style",
}


@dataclass(frozen=True)
class Goal:
    task_id: str
    asin: str
    instruction: str
    attributes: tuple[str, ...]
    options: dict[str, str]  # option group → goal value
    price_upper: float
    category: str  # krill task category
    query: str
    product_category: str
    name: str  # the target product's title (WebShop compares purchased titles with it)


@lru_cache(maxsize=4)
def get_goals(
    num_products: int = 2000, seed: int = 0, num_test_goals: int = 500
) -> dict[str, tuple[Goal, ...]]:
    """All splits' goals for a catalogue, built once per process."""
    return generate_goals(get_catalogue(num_products, seed), seed, num_test_goals)


def generate_goals(
    catalogue: Catalogue, seed: int = 0, num_test_goals: int = 500
) -> dict[str, tuple[Goal, ...]]:
    """Deterministic goals per split; test and valid pools take 25% and 10% of products at most."""
    rng = random.Random(f"webshop-goals-{seed}")
    products = list(catalogue.products)
    rng.shuffle(products)
    n = len(products)
    n_test = max(1, min(num_test_goals, n // 4))
    n_valid = max(1, min(NUM_VALID_GOALS, n // 10))
    pools = {
        "test": products[:n_test],
        "valid": products[n_test : n_test + n_valid],
        "train": products[n_test + n_valid :],
    }
    counts = {
        "test": num_test_goals,
        "valid": n_valid,
        "train": len(pools["train"]) * TRAIN_GOALS_PER_PRODUCT,
    }
    return {split: _goals_for(rng, split, pools[split], counts[split]) for split in SPLITS}


def _goals_for(rng: random.Random, split: str, pool: list[Product], count: int) -> tuple[Goal, ...]:
    goals: list[Goal] = []
    seen: set[str] = set()
    attempts = 0
    while len(goals) < count and attempts < count * 20:
        product = pool[attempts % len(pool)]
        attempts += 1
        goal = make_goal(rng, product, f"webshop_{split}_{len(goals):04d}")
        if goal.instruction in seen:
            continue
        seen.add(goal.instruction)
        goals.append(goal)
    return tuple(goals)


def make_goal(rng: random.Random, product: Product, task_id: str) -> Goal:
    """One goal targeting `product`: 1–3 of its attributes, values for some option groups, a price."""
    attrs = rng.sample(product.attributes, rng.randint(1, min(3, len(product.attributes))))
    groups = [g for g in product.options if rng.random() < 0.75]
    options = {g: rng.choice(product.options[g]) for g in groups}
    above = [p for p in PRICE_RANGE if p > product.price][:4]
    price_upper = max(rng.sample(above, 2)) if len(above) >= 2 else NO_PRICE_LIMIT
    text = _instruction(rng, product, attrs, options)
    if price_upper != NO_PRICE_LIMIT:
        text += f", and price lower than {price_upper:.2f} dollars"
    return Goal(
        task_id=task_id,
        asin=product.asin,
        instruction=text,
        attributes=tuple(attrs),
        options=options,
        price_upper=price_upper,
        category=product.category,
        query=product.query,
        product_category=product.product_category,
        name=product.title,
    )


def _instruction(rng: random.Random, product: Product, attrs: list[str], options: dict[str, str]) -> str:
    spec = vocab.PRODUCT_TYPES[product.type_id]
    noun = spec["noun"].lower()
    for marker, who in (("› Men ›", " for men"), ("› Women ›", " for women")):
        if marker in product.product_category:
            noun += who
    plural = noun.split(" for ")[0].endswith("s")
    lead = rng.choice(_LEADS)
    attrs_and = " and ".join(attrs)
    style = rng.randrange(3)
    if style == 0:
        text = f"{lead} {_article(noun, plural)}{noun} that is {attrs_and}"
    elif style == 1:
        phrase = f"{' '.join(attrs)} {noun}"
        text = f"{lead} {_article(phrase, plural)}{phrase}"
    else:
        text = f"{lead} {_article(noun, plural)}{noun} with {attrs_and}"
    if options:
        text += _options_phrase(rng, options)
    return " ".join(text.split())


def _article(phrase: str, plural: bool) -> str:
    if plural:
        return ""
    return "an " if phrase[:1] in "aeiou" else "a "


def _options_phrase(rng: random.Random, options: dict[str, str]) -> str:
    if rng.random() < 0.5:  # WebShop's synthetic style: "with color: red, and size: large"
        return " with " + ", and ".join(f"{k}: {v}" for k, v in options.items())
    parts = []
    for group, value in options.items():
        if group == "size":
            parts.append(f"size {value}")
        elif group in _OPTION_WORDS:
            parts.append(f"{value} {_OPTION_WORDS[group]}")
        else:
            parts.append(value)
    return ", in " + " and ".join(parts)


def goals_for_split(split: str, num_products: int, seed: int, num_test_goals: int) -> tuple[Goal, ...]:
    """The goals of one split; an unknown split name raises a KrillError listing the known ones."""
    return get_goals(num_products, seed, num_test_goals)[canonical_split(split)]


def canonical_split(split: str) -> str:
    """train | valid | test, also accepting ALFWorld's names (valid_seen → valid, valid_unseen → test)."""
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        known = ", ".join([*SPLITS, *SPLIT_ALIASES])
        raise KrillError(f"unknown WebShop split {split!r}; known: {known}")
    return split
