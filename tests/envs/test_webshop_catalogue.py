"""Generated WebShop catalogue and goals: constraints, determinism, disjoint splits, search."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from krill.categories import WEBSHOP_CATEGORIES
from krill.config import KrillConfig
from krill.envs.webshop.catalogue import generate_catalogue, get_catalogue
from krill.envs.webshop.goals import get_goals, goals_for_split
from krill.envs.webshop.reward import get_reward, normalize_color
from krill.envs.webshop.search import get_search_engine
from krill.errors import KrillError

CFG = KrillConfig().env.webshop


@pytest.fixture(scope="module")
def catalogue():
    return get_catalogue(CFG.num_products, 0)


@pytest.fixture(scope="module")
def goals():
    return get_goals(CFG.num_products, 0, CFG.num_test_goals)


def test_size_and_asins(catalogue):
    assert len(catalogue) == CFG.num_products >= 2000
    asins = [p.asin for p in catalogue.products]
    assert len(set(asins)) == len(asins)
    assert all(re.fullmatch(r"B0[A-Z0-9]{8}", a) for a in asins)


def test_every_webshop_category_is_well_represented(catalogue):
    counts = Counter(p.category for p in catalogue.products)
    expected = set(WEBSHOP_CATEGORIES) - {"search"}  # "search" is the Rust sample bank's catch-all
    assert set(counts) == expected
    assert min(counts.values()) >= 0.1 * len(catalogue)


def test_product_fields_are_consistent(catalogue):
    for p in catalogue.products:
        assert p.title and p.description and p.price > 0 and len(p.bullets) == len(p.attributes) >= 3
        assert " › " in p.product_category
        text = " ".join([p.title, *p.bullets, p.description]).lower()
        assert all(a in text for a in p.attributes), p.asin  # attributes are visible on the pages
        values = [v for vs in p.options.values() for v in vs]
        assert len(values) == len(set(values)), p.asin  # a click selects one group unambiguously
        for vs in p.options.values():
            assert vs and len({normalize_color(v) for v in vs}) == len(vs), p.asin
            assert all(v == v.lower() for v in vs)


def test_same_seed_same_catalogue_other_seed_differs():
    a, b, c = generate_catalogue(200, 7), generate_catalogue(200, 7), generate_catalogue(200, 8)
    assert a.products == b.products
    assert [p.title for p in a.products] != [p.title for p in c.products]


def test_goal_splits_are_disjoint_in_products(goals):
    assert len(goals["test"]) == CFG.num_test_goals
    asins = {split: {g.asin for g in gs} for split, gs in goals.items()}
    assert not asins["train"] & asins["test"]
    assert not asins["train"] & asins["valid"]
    assert not asins["valid"] & asins["test"]
    ids = [g.task_id for gs in goals.values() for g in gs]
    assert len(ids) == len(set(ids))


def test_goals_follow_their_target(goals, catalogue):
    for g in goals["test"]:
        p = catalogue.by_asin[g.asin]
        assert g.category == p.category and g.name == p.title and g.category in WEBSHOP_CATEGORIES
        assert 1 <= len(g.attributes) <= 3 and set(g.attributes) <= set(p.attributes)
        assert all(v in p.options[k] for k, v in g.options.items())
        assert g.price_upper > p.price
        assert g.instruction.endswith(f"price lower than {g.price_upper:.2f} dollars")
        assert get_reward(p, g, p.price, g.options).reward == 1.0


def test_unknown_split_names_the_known_ones():
    with pytest.raises(
        KrillError, match="unknown WebShop split 'dev'; known: train, valid, test, valid_seen"
    ):
        goals_for_split("dev", 200, 0, 10)
    # ALFWorld's split names map onto WebShop's held-out splits
    assert goals_for_split("valid_unseen", 200, 0, 10) == goals_for_split("test", 200, 0, 10)
    assert goals_for_split("valid_seen", 200, 0, 10) == goals_for_split("valid", 200, 0, 10)


def test_bm25_search_finds_goal_targets(goals, catalogue):
    engine = get_search_engine(catalogue)
    assert get_search_engine(catalogue) is engine  # built once per process
    hits = 0
    for g in goals["test"][:100]:
        results = engine.search(g.instruction.split(", and price")[0])
        assert 0 < len(results) <= 50
        hits += g.asin in [p.asin for p in results[:10]]
    assert hits >= 70
    assert engine.search("qwertyuiop zzzz") == []
