"""WebShop reward: hand-computed cases of r = r_type·(att + opt + price)/(|att| + |opt| + 1)."""

from __future__ import annotations

import doctest
from types import SimpleNamespace

import pytest

from krill.envs.webshop import reward
from krill.envs.webshop.reward import (
    attribute_matches,
    get_reward,
    normalize_color,
    option_matches,
    title_nouns,
    token_set_ratio,
    type_reward,
)

PATH_TEE = "Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts"
PATH_WALLET = "Clothing, Shoes & Jewelry › Men › Accessories › Wallets"
PATH_LAMP = "Home & Kitchen › Lighting › Table Lamps"


def _product(**kw):
    base = dict(
        query="t-shirt",
        product_category=PATH_TEE,
        title="Hanes Soft Crew Neck T-Shirt for Men - Cotton, Machine Wash",
        attributes=("cotton", "machine wash", "tagless"),
        bullets=("Tagless: designed for comfort",),
        description="A classic tee.",
    )
    base.update(kw)
    return SimpleNamespace(**base)


def _goal(**kw):
    base = dict(
        query="t-shirt",
        product_category=PATH_TEE,
        name="Gildan Classic Crew Neck T-Shirt for Men - Cotton",
        attributes=("cotton", "machine wash"),
        options={"color": "navy blue", "size": "large"},
        price_upper=30.0,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_doctests_pass():
    assert doctest.testmod(reward).failed == 0


def test_token_set_ratio_matches_thefuzz_values():
    # values thefuzz/rapidfuzz give for these pairs
    assert token_set_ratio("cool powder snow", "powder snow") == 100
    assert token_set_ratio("essential oil", "essential oils") == 96
    assert token_set_ratio("x-large", "xx-large") == 93  # > 85: WebShop's known leniency
    assert token_set_ratio("red", "blue") == 29
    assert token_set_ratio("", "blue") == 0


def test_normalize_color_takes_first_color_set_entry():
    assert normalize_color("navy blue") == "blue"
    assert normalize_color("heather grey") == "grey"
    assert normalize_color("16 oz") == "16 oz"


def test_perfect_purchase_scores_one():
    info = get_reward(_product(), _goal(), price=19.99, options={"color": "navy blue", "size": "large"})
    assert info.reward == 1.0
    assert (info.r_type, info.num_attr_matches, info.num_option_matches, info.r_price) == (1.0, 2, 2, True)


def test_partial_options_and_price_hand_computed():
    # attrs 2/2, options 1/2 (red ≠ blue), price 35 > 30 → (2 + 1 + 0) / (2 + 2 + 1) = 0.6
    info = get_reward(_product(), _goal(), price=35.0, options={"color": "red", "size": "large"})
    assert info.reward == pytest.approx(3 / 5)
    assert info.r_option == 0.5 and info.r_price is False


def test_partial_attributes_hand_computed():
    # goal wants "sulfate free" too: not in attributes nor in any text → attrs 2/3;
    # no options selected → 0/2; price ok → (2 + 0 + 1) / (3 + 2 + 1) = 0.5
    goal = _goal(attributes=("cotton", "machine wash", "sulfate free"))
    info = get_reward(_product(), goal, price=10.0, options={})
    assert info.num_attr_matches == 2
    assert info.reward == pytest.approx(0.5)


def test_attribute_found_in_text_counts():
    p = _product(attributes=(), description="Soft fabric, made of organic cotton.")
    assert (
        attribute_matches(["organic cotton", "tagless"], p.attributes, p.title, p.bullets, p.description) == 2
    )


def test_option_match_is_fuzzy_after_color_normalisation():
    assert option_matches(["navy blue"], ["royal blue"]) == 1  # both normalise to "blue"
    assert option_matches(["large"], ["x-large"]) == 1  # token set ⊂ → 100
    assert option_matches(["large", "red"], ["small", "black"]) == 0


def test_type_reward_levels():
    # same query → 1
    assert (
        type_reward("t-shirt", PATH_TEE, "Hanes Cotton T-Shirt", "t-shirt", PATH_TEE, "Gildan T-Shirt").r_type
        == 1.0
    )
    # different query; title overlap 1/6 ("men") is ≤ 0.2 but the paths share 2 elements → 1
    goal_name = "Gildan Crew Neck Shirt Tee for Men"
    t = type_reward("wallet", PATH_WALLET, "Fossil Wallet for Men", "t-shirt", PATH_TEE, goal_name)
    assert t.category_match and t.title_score == pytest.approx(1 / 6) and t.r_type == 1.0
    # same titles, no shared path → 0.5
    t = type_reward("wallet", PATH_LAMP, "Fossil Wallet for Men", "t-shirt", PATH_TEE, goal_name)
    assert not t.category_match and t.r_type == 0.5
    # overlap 1/11 < 0.1 → 0.1
    long_name = "Gildan Crew Neck Shirt Tee Cotton Collar Seam Pocket Hem for Men"
    assert (
        type_reward("wallet", PATH_WALLET, "Fossil Wallet for Men", "t-shirt", PATH_TEE, long_name).r_type
        == 0.1
    )
    # no query/category match, title overlap 1/5 = 0.2 (not > 0.2) → 0.5
    t = type_reward("lamp", PATH_LAMP, "Umbra Lamp Shirt", "t-shirt", PATH_TEE, "Gildan Crew Neck Shirt Tee")
    assert t.title_score == pytest.approx(0.2) and t.r_type == 0.5
    # no title overlap at all → 0, whatever the category says
    t = type_reward("t-shirt", PATH_TEE, "Umbra Lamp", "t-shirt", PATH_TEE, "Gildan Shirt")
    assert t.title_score == 0.0 and t.r_type == 0.0


def test_wrong_type_zeroes_the_reward():
    lamp = _product(query="table lamp", product_category=PATH_LAMP, title="Umbra Bedside Table Lamp")
    info = get_reward(lamp, _goal(), price=10.0, options={"color": "navy blue", "size": "large"})
    assert info.r_type == 0.0 and info.reward == 0.0


def test_title_nouns_drop_modifiers_and_function_words():
    assert title_nouns("Anker Portable Power Bank - Fast Charging, Slim") == [
        "anker",
        "power",
        "bank",
        "charging",
    ]
