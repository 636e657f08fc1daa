"""AlfworldEnv on the real TextWorld engine: expert, random policy, determinism, invalid actions."""

from __future__ import annotations

import random
import shutil
from collections import Counter

import pytest

from krill.categories import ALFWORLD_CATEGORIES
from krill.config import KrillConfig
from krill.envs.alfworld.generate import generate_games
from krill.envs.base import INVALID_OBSERVATION, Env, make_env
from krill.errors import KrillError


@pytest.fixture(scope="module")
def games_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("alfgames")
    generate_games(root, {"train": 6, "valid_unseen": 6}, seed=0)
    return root


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return KrillConfig(cache_dir=str(tmp_path_factory.mktemp("cache")))  # translations cached here


@pytest.fixture(scope="module")
def env(games_dir, cfg):
    return make_env("alfworld", "valid_unseen", cfg=cfg, games_dir=games_dir)


def play(env, task_id, choose):
    obs, info = env.reset(task_id)
    observations, done = [obs], False
    while not done:
        obs, reward, done, info = env.step(choose(info))
        observations.append(obs)
    return observations, reward, info


def test_protocol_and_first_observation(env):
    assert isinstance(env, Env) and env.max_steps == 50
    ids = env.task_ids()
    assert len(ids) == 6 and ids == env.task_ids()
    obs, info = env.reset(ids[0])
    assert obs.startswith(
        "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly"
    )
    assert obs.endswith(f"\n\nYour task is to: {info['task_description']}.")
    assert info["task_id"] == ids[0] and info["task_category"] in ALFWORLD_CATEGORIES
    assert info["won"] is False and info["valid"] is True
    assert "look" in info["admissible_actions"] and any(
        a.startswith("go to ") for a in info["admissible_actions"]
    )


def test_expert_solves_one_game_of_every_type_with_reward_10(env):
    wins = Counter()
    for task_id in env.task_ids():
        _, reward, info = play(env, task_id, lambda _: env.expert_action())
        assert info["won"] and reward == 10.0 and info["step"] < 20, (task_id, info)
        assert env.expert_action() is None
        wins[info["task_category"]] += 1
    assert set(wins) == set(ALFWORLD_CATEGORIES)


def test_expert_recovers_after_random_moves(env):
    rng = random.Random(1)
    task_id = env.task_ids()[1]
    obs, info = env.reset(task_id)
    for _ in range(8):  # the policy wanders first; the expert replans from wherever it is
        obs, _, done, info = env.step(rng.choice(info["admissible_actions"]))
    while not info["won"] and not done:
        obs, reward, done, info = env.step(env.expert_action())
    assert info["won"] and reward == 10.0


def test_random_policy_rarely_wins(env):
    rng = random.Random(0)
    results = [play(env, t, lambda info: rng.choice(info["admissible_actions"]))[2] for t in env.task_ids()]
    assert all(r["step"] == 50 or r["won"] for r in results)  # 50-step limit ends the episode
    assert sum(r["won"] for r in results) <= 1


def test_same_actions_same_observations_and_different_action_different_observation(env):
    task_id = env.task_ids()[2]
    _, info = env.reset(task_id)
    actions = [a for a in info["admissible_actions"] if a.startswith("go to ")][:4]
    first = [env.step(a)[0] for a in actions]
    env.reset(task_id)
    assert [env.step(a)[0] for a in actions] == first
    env.reset(task_id)
    assert env.step(actions[1])[0] != first[0]


def test_invalid_action_nothing_happens(env):
    obs, info = env.reset(env.task_ids()[3])
    before = info["admissible_actions"]
    obs, reward, done, info = env.step("fly to the moon")
    assert obs == INVALID_OBSERVATION and info["valid"] is False and reward == 0.0 and not done
    assert info["admissible_actions"] == before and info["step"] == 1
    obs, _, _, info = env.step("inventory")
    assert info["valid"] is True and obs == "You are not carrying anything."


def test_reset_none_cycles_a_seeded_order_and_bad_ids_raise(games_dir, cfg):
    a = make_env("alfworld", "train", cfg=cfg, games_dir=games_dir)
    b = make_env("alfworld", "train", cfg=cfg, games_dir=games_dir)
    seq = [a.reset()[1]["task_id"] for _ in range(6)]
    assert sorted(seq) == sorted(a.task_ids()) and seq == [b.reset()[1]["task_id"] for _ in range(6)]
    with pytest.raises(KrillError, match="unknown ALFWorld task"):
        a.reset("no-such-task")
    with pytest.raises(KrillError, match="unknown ALFWorld split"):
        make_env("alfworld", "test", cfg=cfg, games_dir=games_dir)


def test_real_alfworld_data_layout_is_played_when_present(games_dir, tmp_path):
    data = tmp_path / "alfworld_data" / "json_2.1.1"
    shutil.copytree(games_dir / "valid_unseen", data / "valid_unseen")
    cfg = KrillConfig(cache_dir=str(tmp_path / "cache")).override(
        {"env.alfworld.data_dir": str(tmp_path / "alfworld_data")}
    )
    env = make_env("alfworld", "valid_unseen", cfg=cfg)
    assert env.source == "alfworld" and len(env.task_ids()) == 6
    _, reward, info = play(env, env.task_ids()[0], lambda _: env.expert_action())
    assert info["won"] and reward == 10.0


def test_default_set_is_generated_on_first_use_into_the_cache(tmp_path):
    sizes = {
        "env.alfworld.train_games": 7,
        "env.alfworld.valid_seen_games": 6,
        "env.alfworld.valid_unseen_games": 6,
    }
    cfg = KrillConfig(cache_dir=str(tmp_path)).override(sizes)
    env = make_env("alfworld", "valid_seen", cfg=cfg)
    (root,) = (tmp_path / "alfworld").glob("games-0-*")
    assert (root / "manifest.json").exists() and len(env.task_ids()) == 6
    assert len(make_env("alfworld", "train", cfg=cfg).task_ids()) == 7
    assert list((tmp_path / "alfworld").glob("games-*")) == [root]  # reused, not regenerated


def test_search_expert_only_uses_what_it_has_seen_and_still_wins(games_dir, cfg):
    env = make_env("alfworld", "valid_unseen", cfg=cfg, games_dir=games_dir, expert="search")
    for task_id in env.task_ids():
        obs, info = env.reset(task_id)
        first = env.expert_action()
        assert first.startswith("go to ")  # nothing seen yet: it must look before it can take
        observations = [obs]
        done = False
        while not done:
            action = env.expert_action()
            if action.startswith("take "):  # only objects it has been shown
                assert action.split(" from ")[0][len("take ") :] in " ".join(observations)
            obs, reward, done, info = env.step(action)
            observations.append(obs)
        assert info["won"] and reward == 10.0 and info["step"] <= 50
    with pytest.raises(KrillError, match="unknown ALFWorld expert"):
        make_env("alfworld", "valid_unseen", cfg=cfg, games_dir=games_dir, expert="psychic")
