"""The cached engine plays exactly like TextWorld's own PddlEnv; the acceptance run on 60 games."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from krill.envs.alfworld.engine import make_engine
from krill.envs.alfworld.generate import generate_games, load_manifest
from krill.envs.base import make_env


@pytest.fixture(scope="module")
def game_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("alfengine")
    generate_games(root, {"valid_unseen": 1}, seed=5)
    task_id = load_manifest(root)["splits"]["valid_unseen"][0]["task_id"]
    return str(root / "valid_unseen" / task_id / "game.tw-pddl")


def test_cached_engine_equals_textworld_pddl_env(game_file):
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.pddl import PddlEnv

    infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=True, extras=["gamefile"])
    ref = AlfredInfos(AlfredDemangler(PddlEnv(infos), shuffle=False))
    fast = make_engine()
    ref.load(game_file)
    fast.load(game_file)
    a, b = fast.reset(), ref.reset()
    assert a.feedback == b.feedback and a.admissible_commands == b.admissible_commands
    rng = random.Random(0)
    for i in range(12):
        command = "bogus command" if i == 4 else rng.choice(a.admissible_commands)
        (a, _, _), (b, _, _) = fast.step(command), ref.step(command)
        assert a.feedback == b.feedback
        assert a.admissible_commands == b.admissible_commands
        assert sorted(map(str, a.facts)) == sorted(map(str, b.facts))
        assert a["won"] == b["won"]


def test_translation_is_cached_on_disk_and_sys_argv_restored(game_file):
    import sys
    from pathlib import Path

    argv = list(sys.argv)
    engine = make_engine()
    engine.load(game_file)
    assert Path(game_file).with_suffix(".sas.pkl").exists()
    assert sys.argv == argv


@pytest.mark.slow
def test_acceptance_expert_all_and_random_few_on_60_valid_unseen(tmp_path):
    """Issue 4 acceptance: expert 100% on 60 valid_unseen games of all six types; random < 10%."""
    generate_games(tmp_path, {"valid_unseen": 60}, seed=0)
    env = make_env("alfworld", "valid_unseen", games_dir=tmp_path)
    ids = env.task_ids()
    rng = random.Random(0)
    won = defaultdict(list)
    random_wins = 0
    for task_id in ids:
        for policy in ("expert", "random"):
            obs, info = env.reset(task_id)
            done = False
            while not done:
                action = env.expert_action() if policy == "expert" else rng.choice(info["admissible_actions"])
                obs, reward, done, info = env.step(action)
            if policy == "expert":
                won[info["task_category"]].append(info["won"])
            else:
                random_wins += info["won"]
    assert Counter({k: len(v) for k, v in won.items()}) == Counter(dict.fromkeys(won, 10)) and len(won) == 6
    assert all(all(v) for v in won.values())
    assert random_wins / len(ids) < 0.10
