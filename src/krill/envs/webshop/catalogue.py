"""A generated, seeded product catalogue shaped like WebShop's (asin, Title, Price, Description,
BulletPoints, Attributes, options, category path, query).

The real catalogue is a 1.18M-product scrape that cannot be downloaded here; this one is built from
`vocab.PRODUCT_TYPES` so that the same seed always gives the same products, and so that the
reward's quirks (fuzzy option matching, colour normalisation) behave as on the real data.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field
from functools import lru_cache

from krill.envs.webshop import vocab
from krill.envs.webshop.reward import normalize_color

_GENDER_BY_PATH = (("› Men ›", "Men"), ("› Women ›", "Women"))


@dataclass(frozen=True)
class Product:
    """One product, with the fields WebShop's pages and reward read."""

    asin: str
    title: str
    price: float
    category: str  # krill category (apparel, footwear, ...)
    query: str  # the search query the product was "scraped" under (WebShop `query`)
    product_category: str  # Amazon-style path "a › b › c"
    description: str
    bullets: tuple[str, ...]
    attributes: tuple[str, ...]
    options: dict[str, list[str]] = field(hash=False)
    type_id: int = 0

    @property
    def price_text(self) -> str:
        return f"${self.price:.2f}"


@dataclass(frozen=True)
class Catalogue:
    products: tuple[Product, ...]
    by_asin: dict[str, Product] = field(hash=False)
    seed: int = 0

    def __len__(self) -> int:
        return len(self.products)


@lru_cache(maxsize=4)
def get_catalogue(num_products: int = 2000, seed: int = 0) -> Catalogue:
    """The catalogue for (size, seed), built once per process (generation takes ~0.1 s per 1k)."""
    return generate_catalogue(num_products, seed)


def generate_catalogue(num_products: int = 2000, seed: int = 0) -> Catalogue:
    """Generate `num_products` products spread evenly over the product types, deterministically."""
    rng = random.Random(f"webshop-catalogue-{seed}")
    type_ids = list(range(len(vocab.PRODUCT_TYPES)))
    products: list[Product] = []
    asins: set[str] = set()
    order: list[int] = []
    while len(order) < num_products:
        rng.shuffle(type_ids)
        order.extend(type_ids)
    for type_id in order[:num_products]:
        asin = _new_asin(rng, asins)
        products.append(_make_product(rng, asin, type_id))
    return Catalogue(products=tuple(products), by_asin={p.asin: p for p in products}, seed=seed)


def _new_asin(rng: random.Random, taken: set[str]) -> str:
    alphabet = string.ascii_uppercase + string.digits
    while True:
        asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _make_product(rng: random.Random, asin: str, type_id: int) -> Product:
    spec = vocab.PRODUCT_TYPES[type_id]
    brand = rng.choice(vocab.BRANDS_BY_QUERY.get(spec["query"]) or vocab.BRANDS[spec["cat"]])
    attributes = rng.sample(spec["attrs"], rng.randint(3, 5))
    options = {name: _pick_option_values(rng, values) for name, values in spec["opts"].items()}
    price = _price(rng, *spec["price"])
    title = _title(rng, brand, spec, attributes)
    description = _description(rng, brand, spec["noun"], attributes)
    bullets = _bullets(rng, attributes)
    return Product(
        asin=asin,
        title=title,
        price=round(price, 2),
        category=spec["cat"],
        query=spec["query"],
        product_category=spec["path"],
        description=description,
        bullets=tuple(bullets),
        attributes=tuple(attributes),
        options=options,
        type_id=type_id,
    )


def _price(rng: random.Random, lo: float, hi: float) -> float:
    """Log-uniform over [lo, 2.5·hi]: Amazon prices have a long tail within one query, which is
    what makes WebShop's price bound bite (a bound of ~10–40 dollars above the target's price)."""
    price = math.exp(rng.uniform(math.log(lo), math.log(2.5 * hi)))
    cents = rng.choice([0.99, 0.95, 0.49, 0.0])
    return max(1.99, round(math.floor(price) + cents, 2))


def _pick_option_values(rng: random.Random, values: list[str]) -> list[str]:
    """A random subset (kept in the vocabulary's order) whose colour-normalised forms are distinct,
    so that within a group the choice matters to the reward (WebShop normalises colours first)."""
    k = min(len(values), rng.randint(2, 6))
    chosen = set(rng.sample(values, k))
    out: list[str] = []
    seen: set[str] = set()
    for v in values:
        norm = normalize_color(v)
        if v in chosen and norm not in seen:
            out.append(v)
            seen.add(norm)
    return out


def _gender(path: str) -> str | None:
    for marker, word in _GENDER_BY_PATH:
        if marker in path:
            return word
    return None


def _title(rng: random.Random, brand: str, spec: dict, attributes: list[str]) -> str:
    adjectives = rng.sample(vocab.MODIFIERS[spec["cat"]], 2)
    in_title = [_capitalise(a) for a in attributes[: rng.randint(1, 2)] if a not in spec["noun"].lower()]
    head = f"{brand} {adjectives[0].title()} {spec['noun']}"
    gender = _gender(spec["path"])
    if gender:
        head += f" for {gender}"
    tail = ", ".join([*in_title, adjectives[1].title()])
    return f"{head} - {tail}"


def _capitalise(phrase: str) -> str:
    return " ".join(w.upper() if w in vocab.ACRONYMS else w[:1].upper() + w[1:] for w in phrase.split())


def _description(rng: random.Random, brand: str, noun: str, attributes: list[str]) -> str:
    opener = rng.choice(vocab.DESCRIPTION_OPENERS).format(brand=brand, noun=noun.lower())
    middle = f"It features {', '.join(attributes[:-1])} and {attributes[-1]}."
    return " ".join([opener, middle, rng.choice(vocab.DESCRIPTION_FILLERS)])


def _bullets(rng: random.Random, attributes: list[str]) -> list[str]:
    out = []
    for attr in attributes:
        tpl = rng.choice(vocab.FEATURE_TEMPLATES)
        out.append(tpl.format(attr=attr, Attr=attr[:1].upper() + attr[1:]))
    return out
