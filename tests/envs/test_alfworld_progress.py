"""ALFWorld progress reward: subgoals read from hand-built PDDL facts, then on real generated games."""

from __future__ import annotations

import doctest
import itertools
import math

import pytest
from counter_env import live_server
from textworld.logic import Proposition, Variable

from krill.agent.actors import ExpertActor
from krill.agent.rollout import run_episodes
from krill.config import KrillConfig
from krill.envs.alfworld import progress as progress_module
from krill.envs.alfworld.expert import Goal
from krill.envs.alfworld.generate import generate_games
from krill.envs.alfworld.progress import progress, progress_reward, subgoal_names, subgoals
from krill.envs.base import INVALID_OBSERVATION, make_env
from krill.envs.pool import SerialPool
from krill.envs.remote import RemoteEnv
from krill.envs.server import create_app

# --- hand-built states ---------------------------------------------------------------------------


def fact(name: str, *args: str) -> Proposition:
    """A fact as the engine's state holds it (World reads `.name` and `.arguments[i].name`)."""
    return Proposition(name, [Variable(a, "object") for a in args])


ROOM = [
    fact("atlocation", "agent1 ", "loc 1"),  # the engine's agent name has a trailing space
    *(
        fact("receptacletype", r, f"{r.split()[0]}type")
        for r in ("cabinet 1", "countertop 1", "sinkbasin 1", "microwave 1", "fridge 1", "desk 1")
    ),
    *(fact("objecttype", o, f"{o.split()[0]}type") for o in ("apple 1", "apple 2", "mug 1", "desklamp 1")),
    fact("inreceptacle", "mug 1", "countertop 1"),
    fact("inreceptacle", "desklamp 1", "desk 1"),
]


def state(*extra: Proposition) -> list[Proposition]:
    return ROOM + list(extra)


IN_CABINET = fact("inreceptacle", "apple 1", "cabinet 1")
HOLDS = fact("holds", "agent1 ", "apple 1")
APPLE_2_IN_CABINET = fact("inreceptacle", "apple 2", "cabinet 1")


def test_pick_and_place_simple_seen_held_placed():
    goal = Goal("pick_and_place_simple", "apple", "countertop")
    assert subgoals(state(IN_CABINET), goal, set(), False) == (0, 3)  # nothing looked into yet
    assert subgoals(state(IN_CABINET), goal, {"countertop 1"}, False) == (0, 3)  # looked, not there
    assert subgoals(state(IN_CABINET), goal, {"cabinet 1"}, False) == (1, 3)  # seen
    assert subgoals(state(HOLDS), goal, {"cabinet 1"}, False) == (2, 3)  # held
    assert subgoals(state(HOLDS), goal, set(), False) == (2, 3)  # held counts as seen, whatever was looked at
    assert subgoals(state(fact("holds", "agent1 ", "mug 1"), IN_CABINET), goal, set(), False) == (
        0,
        3,
    )  # wrong object
    assert subgoals(state(fact("inreceptacle", "apple 1", "countertop 1")), goal, {"countertop 1"}, True) == (
        3,
        3,
    )


def test_pick_two_seen_held_one_placed_both_placed():
    goal = Goal("pick_two_obj_and_place", "apple", "countertop")
    on_top = fact("inreceptacle", "apple 1", "countertop 1")
    assert subgoals(state(IN_CABINET, APPLE_2_IN_CABINET), goal, set(), False) == (0, 4)
    assert subgoals(state(IN_CABINET, APPLE_2_IN_CABINET), goal, {"cabinet 1"}, False) == (1, 4)
    assert subgoals(state(HOLDS, APPLE_2_IN_CABINET), goal, {"cabinet 1"}, False) == (2, 4)
    assert subgoals(state(on_top, APPLE_2_IN_CABINET), goal, {"cabinet 1", "countertop 1"}, False) == (3, 4)
    holds_2 = fact("holds", "agent1 ", "apple 2")
    assert subgoals(state(on_top, holds_2), goal, {"cabinet 1", "countertop 1"}, False) == (
        3,
        4,
    )  # the furthest
    assert subgoals(state(on_top, APPLE_2_IN_CABINET), goal, set(), False) == (
        0,
        4,
    )  # placed only counts when known
    both = fact("inreceptacle", "apple 2", "countertop 1")
    assert subgoals(state(on_top, both), goal, {"countertop 1"}, True) == (4, 4)


@pytest.mark.parametrize(
    "task_type, flag, other_flag",
    [
        ("pick_clean_then_place_in_recep", "isclean", "ishot"),
        ("pick_heat_then_place_in_recep", "ishot", "iscool"),
        ("pick_cool_then_place_in_recep", "iscool", "isclean"),
    ],
)
def test_clean_heat_cool_seen_held_transformed_placed(task_type, flag, other_flag):
    goal = Goal(task_type, "apple", "countertop")
    assert subgoal_names(task_type)[2] in ("cleaned", "heated", "cooled")
    assert subgoals(state(IN_CABINET), goal, set(), False) == (0, 4)
    assert subgoals(state(IN_CABINET), goal, {"cabinet 1"}, False) == (1, 4)
    assert subgoals(state(HOLDS), goal, {"cabinet 1"}, False) == (2, 4)
    assert subgoals(state(HOLDS, fact(other_flag, "apple 1")), goal, set(), False) == (
        2,
        4,
    )  # wrong treatment
    assert subgoals(state(HOLDS, fact(flag, "apple 1")), goal, set(), False) == (3, 4)
    done_in_cabinet = state(IN_CABINET, fact(flag, "apple 1"))
    assert subgoals(done_in_cabinet, goal, {"cabinet 1"}, False) == (1, 4)  # put down: the env's max keeps 3
    assert subgoals(done_in_cabinet, goal, set(), False) == (0, 4)
    untreated_on_top = state(fact("inreceptacle", "apple 1", "countertop 1"))
    assert subgoals(untreated_on_top, goal, {"countertop 1"}, False) == (1, 4)  # placed untreated: not won
    assert subgoals(state(fact(flag, "apple 1")), goal, set(), True) == (4, 4)


def test_cool_target_that_starts_in_the_fridge_counts_once_found():
    goal = Goal("pick_cool_then_place_in_recep", "apple", "countertop")
    chilled = state(fact("inreceptacle", "apple 1", "fridge 1"), fact("iscool", "apple 1"))
    assert subgoals(chilled, goal, set(), False) == (0, 4)  # ALFWorld marks it cool from the start
    assert subgoals(chilled, goal, {"fridge 1"}, False) == (1, 4)  # opening the fridge: seen
    in_hand = state(HOLDS, fact("iscool", "apple 1"))
    assert subgoals(in_hand, goal, {"fridge 1"}, False) == (3, 4)  # taking it out: held and cooled at once


def test_look_at_obj_in_light_seen_held_lamp_seen_used():
    goal = Goal("look_at_obj_in_light", "apple", toggle="desklamp")
    assert subgoals(state(IN_CABINET), goal, set(), False) == (0, 4)
    assert subgoals(state(IN_CABINET), goal, {"desk 1"}, False) == (0, 4)  # the lamp alone: not yet
    assert subgoals(state(IN_CABINET), goal, {"cabinet 1", "desk 1"}, False) == (1, 4)
    assert subgoals(state(HOLDS), goal, {"cabinet 1"}, False) == (2, 4)
    assert subgoals(state(HOLDS), goal, {"cabinet 1", "desk 1"}, False) == (3, 4)  # lamp seen, object in hand
    assert subgoals(state(HOLDS, fact("istoggled", "desklamp 1")), goal, {"desk 1"}, True) == (4, 4)


def test_progress_is_the_share_and_one_when_won_and_unknown_types_have_only_the_win():
    goal = Goal("pick_clean_then_place_in_recep", "apple", "countertop")
    assert progress(state(HOLDS), goal, set(), False) == 0.5
    assert progress(state(IN_CABINET), goal, set(), True) == 1.0
    odd = Goal("pick_and_slice", "apple", "countertop")
    assert subgoals(state(HOLDS), odd, set(), False) == (0, 1) and progress(state(), odd, set(), True) == 1.0


@pytest.mark.parametrize("total", [3, 4])
def test_every_way_of_reaching_all_subgoals_pays_exactly_10(total):
    """The rises of one won episode, in any grouping, sum to 10.0 (sequentially and with fsum)."""
    for cuts in itertools.chain.from_iterable(
        itertools.combinations(range(1, total), k) for k in range(total)
    ):
        marks = [0, *cuts, total]
        rewards = [progress_reward(a, b, total) for a, b in itertools.pairwise(marks)]
        running = 0.0
        for r in [0.0, *rewards, 0.0]:  # idle steps in between, as an episode has them
            running += r
        assert running == 10.0 and sum(rewards) == 10.0 and math.fsum(rewards) == 10.0, marks


def test_module_doctests_pass():
    assert doctest.testmod(progress_module).failed == 0


# --- real generated games ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def games_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("alfgames")
    generate_games(root, {"train": 1, "valid_unseen": 6}, seed=0)  # one game of every task type
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))  # translations cached here across the tests


def make(games_dir, cache_dir, reward: str, expert: str = "oracle"):
    cfg = KrillConfig(cache_dir=cache_dir).override({"env.alfworld.reward": reward})
    return make_env("alfworld", "valid_unseen", cfg=cfg, games_dir=games_dir, expert=expert)


def play_expert(env, task_id):
    """(actions, rewards, infos) of the expert's episode; infos[0] is the reset's."""
    _, info = env.reset(task_id)
    actions, rewards, infos, done = [], [], [info], False
    while not done:
        actions.append(env.expert_action())
        _, reward, done, info = env.step(actions[-1])
        rewards.append(reward)
        infos.append(info)
    return actions, rewards, infos


@pytest.mark.parametrize("expert", ["oracle", "search"])
def test_expert_games_pay_rising_progress_that_totals_10(games_dir, cache_dir, expert):
    env = make(games_dir, cache_dir, "progress", expert)
    success = make(games_dir, cache_dir, "success", expert)
    for task_id in env.task_ids():
        actions, rewards, infos = play_expert(env, task_id)
        marks = [i["progress"] for i in infos]
        assert infos[-1]["won"] and marks[0] == 0.0 and marks[-1] == 1.0, (task_id, marks)
        assert all(r >= 0 for r in rewards) and sum(rewards) == 10.0, (task_id, rewards)
        assert marks == sorted(marks) and sum(r > 0 for r in rewards) >= 2, (task_id, marks)
        for r, (a, b) in zip(rewards, itertools.pairwise(marks), strict=True):
            assert math.isclose(r, 10 * (b - a)), (task_id, rewards, marks)  # each rise, paid when it happens
        _, info = success.reset(task_id)  # the same game, the same moves, win-only reward
        steps = [success.step(a) for a in actions]
        assert [s[1] for s in steps] == [0.0] * (len(actions) - 1) + [10.0], task_id
        assert [s[3]["progress"] for s in steps] == marks[1:]  # logged in both modes
        assert [s[3]["won"] for s in steps] == [i["won"] for i in infos[1:]]  # success unchanged


def test_invalid_and_idle_actions_earn_nothing_beyond_the_state(games_dir, cache_dir):
    env = make(games_dir, cache_dir, "progress")
    task_id = env.task_ids()[0]
    _, info = env.reset(task_id)
    total, done, n = 0.0, False, 0
    while not done:  # a whole episode of nonsense and looking around: no subgoal, no reward
        action = ["fly to the moon", "look", "inventory", "help"][n % 4]
        obs, reward, done, info = env.step(action)
        total, n = total + reward, n + 1
        assert reward == 0.0 and info["progress"] == 0.0
    assert n == env.max_steps and total == 0.0 and not info["won"]

    env.reset(task_id)
    paid = 0.0
    while paid == 0.0:  # the expert until its first subgoal
        _, reward, _, info = env.step(env.expert_action())
        paid += reward
    reached = info["progress"]
    assert reached > 0 and math.isclose(paid, 10 * reached)
    for action in ["fly to the moon", "look", "inventory", "take the moon"] * 3:
        obs, reward, done, info = env.step(action)
        assert reward == 0.0 and info["progress"] == reached  # the running max neither pays nor drops
    assert obs == INVALID_OBSERVATION


def test_random_moves_pay_10_times_the_best_progress(games_dir, cache_dir):
    import random

    env = make(games_dir, cache_dir, "progress")
    rng = random.Random(3)
    for task_id in env.task_ids()[:3]:
        _, info = env.reset(task_id)
        rewards, marks, done = [], [0.0], False
        while not done:
            _, reward, done, info = env.step(rng.choice(info["admissible_actions"]))
            rewards.append(reward)
            marks.append(info["progress"])
        assert all(r >= 0 for r in rewards) and marks == sorted(marks)
        assert math.isclose(sum(rewards), 10 * marks[-1])


def test_progress_reaches_trajectories(games_dir, cache_dir):
    cfg = KrillConfig(cache_dir=cache_dir).override({"env.alfworld.reward": "progress"})
    with SerialPool("alfworld", 2, "valid_unseen", cfg, games_dir=games_dir) as pool:
        trajs = run_episodes(ExpertActor(), pool, pool.task_ids()[:2])
    for t in trajs:
        assert t.success and t.total_reward == 10.0 and t.metadata["progress"] == 1.0


def test_progress_and_its_rewards_cross_the_env_server(games_dir, cache_dir):
    cfg = KrillConfig(cache_dir=cache_dir).override(
        {"env.alfworld.reward": "progress", "env.alfworld.games_dir": str(games_dir)}
    )
    task_id = make(games_dir, cache_dir, "progress").task_ids()[1]
    with live_server(create_app("alfworld", "valid_unseen", cfg)) as url:
        remote = RemoteEnv(url)
        _, remote_rewards, remote_infos = play_expert(remote, task_id)
        remote.close()
    _, rewards, infos = play_expert(make(games_dir, cache_dir, "progress"), task_id)
    assert remote_rewards == rewards and sum(rewards) == 10.0
    assert [i["progress"] for i in remote_infos] == [i["progress"] for i in infos]
