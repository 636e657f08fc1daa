"""WebshopEnv: pages, paging, invalid actions, determinism, step limit, expert vs random."""

from __future__ import annotations

import doctest
import importlib
import random
import statistics

import pytest

from krill.config import KrillConfig
from krill.envs.base import INVALID_OBSERVATION, Env, make_env
from krill.envs.webshop import WebshopEnv
from krill.errors import KrillError

NOTHING = INVALID_OBSERVATION


@pytest.fixture(scope="module")
def env() -> WebshopEnv:
    return make_env("webshop", "test", cfg=KrillConfig())


def _to_results(env: WebshopEnv, task_id: str = "webshop_test_0000", query: str = "t-shirt cotton"):
    env.reset(task_id)
    return env.step(f"search[{query}]")


@pytest.mark.parametrize("module", ["env", "pages", "search", "expert", "catalogue", "goals"])
def test_module_doctests(module):
    mod = importlib.import_module(f"krill.envs.webshop.{module}")
    assert doctest.testmod(mod).failed == 0


def test_registered_and_configured(env):
    assert isinstance(env, Env) and env.name == "webshop" and env.max_steps == 15
    assert len(env.task_ids()) == 500
    small = make_env("webshop", "train", cfg=KrillConfig(), num_products=300, max_steps=5)
    assert len(small.catalogue) == 300 and small.max_steps == 5


def test_search_page(env):
    obs, info = env.reset("webshop_test_0003")
    assert obs == f"WebShop [SEP] Instruction: [SEP] {info['task_description']} [SEP] Search"
    assert info["admissible_actions"] == ["search[...]"]
    assert (
        info["task_id"] == "webshop_test_0003" and info["valid"] and not info["won"] and info["score"] == 0.0
    )
    assert info["task_category"] == env.goal.category


def test_results_paging(env):
    obs, reward, done, info = _to_results(env)
    assert (reward, done, info["valid"]) == (0.0, False, True)
    parts = obs.split(" [SEP] ")
    assert parts[2:5] == ["Back to Search", "Page 1 (Total results: 50)", "Next >"]
    assert "< Prev" not in parts
    asins = parts[5::3]
    assert len(asins) == 10 and all(a.startswith("B0") for a in asins)
    assert info["admissible_actions"][:2] == ["click[back to search]", "click[next >]"]
    assert info["admissible_actions"][2:] == [f"click[{a.lower()}]" for a in asins]
    page1 = obs
    obs2, *_ = env.step("click[Next >]")
    assert "Page 2 (Total results: 50) [SEP] < Prev [SEP] Next >" in obs2
    assert set(obs2.split(" [SEP] ")[6::3]).isdisjoint(asins)
    assert env.step("click[< prev]")[0] == page1


def test_item_and_sub_pages(env):
    obs, *_ = _to_results(env)
    asin = obs.split(" [SEP] ")[5]
    item, _, _, info = env.step(f"click[{asin}]")  # upper case works: matching is case-insensitive
    product = env.catalogue.by_asin[asin]
    assert item.startswith(f"Instruction: [SEP] {env.goal.instruction} [SEP] Back to Search [SEP] < Prev")
    for name, values in product.options.items():
        assert f" [SEP] {name} [SEP] {' [SEP] '.join(values)}" in item
    assert item.endswith(
        f"{product.title} [SEP] Price: {product.price_text} [SEP] Rating: N.A. "
        "[SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now"
    )
    assert "click[buy now]" in info["admissible_actions"]
    desc, *_ = env.step("click[Description]")
    assert desc.endswith(product.description)
    assert env.step("click[< Prev]")[0] == item
    feats, *_ = env.step("click[features]")
    assert feats.endswith(" [SEP] ".join(product.bullets))
    assert env.step("click[back to search]")[0].startswith("WebShop [SEP] Instruction:")


@pytest.mark.parametrize(
    "setup, action",
    [
        ([], "click[search]"),  # the search button is not clickable, as in the original
        ([], "click[buy now]"),
        ([], "search[]"),
        ([], "buy the shirt"),
        (["search[t-shirt]"], "search[hoodie]"),  # no search box on the results page
        (["search[t-shirt]"], "click[< prev]"),  # no "< Prev" on page 1
        (["search[t-shirt]"], "click[b0zzzzzzzz]"),
    ],
)
def test_invalid_actions_change_nothing(env, setup, action):
    env.reset("webshop_test_0001")
    for a in setup:
        before, *_ = env.step(a)
    admissible = env._info(True)["admissible_actions"]
    obs, reward, done, info = env.step(action)
    assert (obs, reward, done, info["valid"]) == (NOTHING, 0.0, False, False)
    assert info["admissible_actions"] == admissible
    if setup:  # the page is still there: a valid click works as before
        assert env.step("click[next >]")[3]["valid"]


def test_step_limit_ends_the_episode_with_zero(env):
    env.reset("webshop_test_0002")
    for i in range(env.max_steps):
        obs, reward, done, info = env.step("jump")
        assert done == (i == env.max_steps - 1) and reward == 0.0
    assert env.expert_action() is None


def test_buying_gives_ten_times_the_score(env):
    env.reset("webshop_test_0004")
    done, total = False, 0.0
    while not done:
        obs, reward, done, info = env.step(env.expert_action())
        total += reward
    assert obs.startswith("Thank you for shopping with us!")
    assert info["won"] and info["score"] == 1.0 and total == 10.0
    assert env.step("click[buy now]")[0] == NOTHING


def test_buying_without_options_scores_partially(env):
    env.reset("webshop_test_0005")
    goal = env.goal
    env.step(f"search[{env.catalogue.by_asin[goal.asin].title}]")
    env.step(f"click[{goal.asin}]")
    _, reward, done, info = env.step("click[buy now]")
    n = len(goal.attributes) + len(goal.options) + 1
    assert done and info["score"] == pytest.approx((n - len(goal.options)) / n)
    assert reward == pytest.approx(10 * info["score"]) and info["won"] == (not goal.options)


def test_same_actions_same_observations_and_different_actions_differ():
    a = make_env("webshop", "test", cfg=KrillConfig())
    b = make_env("webshop", "test", cfg=KrillConfig())
    actions = ["search[red cotton shirt]", "click[next >]", "click[back to search]", "search[wallet]"]
    obs_a = [a.reset("webshop_test_0007")[0]] + [a.step(x)[0] for x in actions]
    obs_b = [b.reset("webshop_test_0007")[0]] + [b.step(x)[0] for x in actions]
    assert obs_a == obs_b
    b.reset("webshop_test_0007")
    assert b.step("search[leather wallet]")[0] != obs_a[1]
    # reset(None) draws tasks from the split, the same sequence for the same seed
    fresh = [make_env("webshop", "test", cfg=KrillConfig()) for _ in range(2)]
    drawn = [[e.reset()[1]["task_id"] for _ in range(5)] for e in fresh]
    assert drawn[0] == drawn[1] and len(set(drawn[0])) > 1 and set(drawn[0]) <= set(a.task_ids())
    with pytest.raises(KrillError, match="unknown WebShop task id 'nope'"):
        a.reset("nope")


def _play(env: WebshopEnv, task_id: str, policy) -> float:
    obs, info = env.reset(task_id)
    done = False
    while not done:
        obs, _, done, info = env.step(policy(info))
    return info["score"]


def test_expert_beats_random_on_200_test_goals(env):
    ids = env.task_ids()[:200]
    expert = [_play(env, t, lambda info: env.expert_action()) for t in ids]
    rng = random.Random(0)

    def random_policy(info):
        # uniform over admissible actions; the search box gets 2–5 random words of the instruction
        action = rng.choice(info["admissible_actions"])
        if action == "search[...]":
            words = [w.strip(",.;:") for w in info["task_description"].split() if len(w) > 2]
            action = f"search[{' '.join(rng.sample(words, min(len(words), rng.randint(2, 5))))}]"
        return action

    rand = [_play(env, t, random_policy) for t in ids]
    print(f"expert mean {statistics.mean(expert):.3f}, random mean {statistics.mean(rand):.3f}")
    assert statistics.mean(expert) >= 0.95
    assert statistics.mean(rand) < 0.2


def test_paging_past_the_end_shows_an_empty_page(env):
    _to_results(env, query="wallet")
    total = len(env.session.results)
    for _ in range((total + 9) // 10):
        obs, _, _, info = env.step("click[next >]")
    assert info["valid"] and obs.endswith("< Prev [SEP] Next >")  # no products, as in the original
    assert info["admissible_actions"] == ["click[back to search]", "click[< prev]", "click[next >]"]


def test_last_option_click_per_group_is_what_gets_bought(env):
    env.reset("webshop_test_0008")
    goal = env.goal
    assert goal.options, "pick a goal with options"
    group, want = next(iter(goal.options.items()))
    target = env.catalogue.by_asin[goal.asin]
    other = next(v for v in target.options[group] if v != want)
    env.step(f"search[{target.title}]")
    env.step(f"click[{goal.asin}]")
    for value in [other, *goal.options.values()]:
        assert env.step(f"click[{value}]")[3]["valid"]
    assert env.session.options == goal.options
    assert env.step("click[buy now]")[3]["score"] == 1.0


def test_expert_accepts_an_equally_good_product(env):
    from krill.envs.webshop.expert import winning_options

    for task_id in env.task_ids():
        env.reset(task_id)
        goal = env.goal
        twins = [p for p in env.catalogue.products if p.asin != goal.asin and winning_options(p, goal)]
        if twins:
            break
    assert twins, "some goal should have a non-target product that scores 1"
    twin = twins[0]
    env.step(f"search[{twin.title}]")
    assert env.step(f"click[{twin.asin}]")[3]["valid"]
    for value in winning_options(twin, goal).values():
        env.step(f"click[{value}]")
    assert env.step("click[buy now]")[3]["score"] == 1.0
