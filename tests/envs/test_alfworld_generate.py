"""The ALFWorld game generator: scene constraints, goals the scene supports, splits, reproducibility."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from krill.envs.alfworld.generate import SPLITS, generate_games, load_manifest
from krill.envs.alfworld.scenes import LAMP_HOSTS, constants
from krill.envs.alfworld.tasks import APPLIANCE, TASK_TYPES
from krill.errors import KrillError
from krill.io import read_json

SIZES = {"train": 24, "valid_seen": 12, "valid_unseen": 18}


@pytest.fixture(scope="module")
def games(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("alfgen")
    return root, generate_games(root, SIZES, seed=3)


def _unfix(name: str) -> str:
    for old, new in (("_bar_", "|"), ("_minus_", "-"), ("_plus_", "+"), ("_dot_", "."), ("_comma_", ",")):
        name = name.replace(old, new)
    return name


def parse_problem(text: str) -> dict:
    """Types, placements and locations from a generated PDDL problem."""
    init = text.split("(:init", 1)[1].split("(:goal", 1)[0]
    facts = [f.split() for f in re.findall(r"\(([^()]+)\)", init)]
    by = lambda name: [f[1:] for f in facts if f[0] == name]  # noqa: E731
    return {
        "rtype": {r: t[: -len("Type")] for r, t in by("receptacleType")},
        "otype": {o: t[: -len("Type")] for o, t in by("objectType")},
        "inrec": dict(by("inReceptacle")),
        "pickupable": {f[0] for f in by("pickupable")},
        "toggleable": {f[0] for f in by("toggleable")},
        "agent": by("atLocation")[0][1],
        "recloc": dict(by("receptacleAtLocation")),
        "can": {tuple(f) for f in by("canContain")},
    }


def _games_of(root: Path, split: str):
    for entry in load_manifest(root)["splits"][split]:
        folder = root / split / entry["task_id"]
        yield entry, read_json(folder / "traj_data.json"), read_json(folder / "game.tw-pddl")


def test_manifest_sizes_and_every_type_in_every_split(games):
    root, manifest = games
    for split in SPLITS:
        entries = manifest["splits"][split]
        assert len(entries) == SIZES[split]
        assert set(Counter(e["task_type"] for e in entries)) == set(TASK_TYPES)
        assert len({e["task_id"] for e in entries}) == len(entries)
    assert load_manifest(root) == manifest


def test_objects_only_where_val_receptacle_objects_allows(games):
    root, _ = games
    val = constants().VAL_RECEPTACLE_OBJECTS
    for split in SPLITS:
        for _, _, game in _games_of(root, split):
            p = parse_problem(game["pddl_problem"])
            for obj, rec in p["inrec"].items():
                otype, rtype = p["otype"][obj], p["rtype"][rec]
                if obj in p["toggleable"]:  # lamps stand on furniture, never picked up
                    assert rtype in LAMP_HOSTS[otype] and obj not in p["pickupable"]
                else:
                    assert otype in val[rtype], (otype, rtype)
                    assert (f"{rtype}Type", f"{otype}Type") in p["can"]
            assert p["agent"] not in set(p["recloc"].values())  # "You are in the middle of a room."


def test_goals_only_where_the_scene_supports_them(games):
    root, _ = games
    c = constants()
    for split in SPLITS:
        for entry, traj, game in _games_of(root, split):
            p = parse_problem(game["pddl_problem"])
            params, kind = traj["pddl_params"], traj["task_type"]
            rtypes = set(p["rtype"].values())
            targets = [o for o, t in p["otype"].items() if t == params["object_target"]]
            assert targets and all(o in p["pickupable"] for o in targets)
            if kind == "look_at_obj_in_light":
                assert params["toggle_target"] in set(p["otype"].values())
            else:
                assert params["parent_target"] in rtypes
                # the goal does not already hold: no target starts in a goal receptacle
                assert all(p["rtype"][p["inrec"][o]] != params["parent_target"] for o in targets)
            if kind in APPLIANCE:
                appliance, action = APPLIANCE[kind]
                assert appliance in rtypes and params["object_target"] in c.VAL_ACTION_OBJECTS[action]
            if kind == "pick_two_obj_and_place":
                assert len(targets) >= 2
            assert traj["scene"]["scene_num"] in (
                c.TEST_SCENE_NUMBERS if split == "valid_unseen" else c.TRAIN_SCENE_NUMBERS
            )
            assert f"Your task is to: {entry['description']}." in game["grammar"]


def test_descriptions_use_alfworld_wording(games):
    _, manifest = games
    patterns = {
        "pick_and_place_simple": r"^put (a|some) \w+ (in|on) \w+$",
        "pick_two_obj_and_place": r"^(put two \w+ in|find two \w+ and put them in) \w+$",
        "look_at_obj_in_light": r"^(look at \w+ under the|examine the \w+ with the) (desklamp|floorlamp)$",
        "pick_clean_then_place_in_recep": r"^(put a clean \w+ in|clean some \w+ and put it in) \w+$",
        "pick_heat_then_place_in_recep": r"^(put a hot \w+ in|heat some \w+ and put it in) \w+$",
        "pick_cool_then_place_in_recep": r"^(put a cool \w+ in|cool some \w+ and put it in) \w+$",
    }
    for entries in manifest["splits"].values():
        for e in entries:
            assert re.match(patterns[e["task_type"]], e["description"]), e["description"]


def test_reproducible_with_seed_and_different_across_seeds_and_splits(games, tmp_path):
    root, manifest = games
    again = generate_games(tmp_path / "again", {"valid_unseen": 6}, seed=3)
    assert again["splits"]["valid_unseen"] == manifest["splits"]["valid_unseen"][:6]
    first = manifest["splits"]["valid_unseen"][0]["task_id"]
    same = (tmp_path / "again" / "valid_unseen" / first / "game.tw-pddl").read_bytes()
    assert same == (root / "valid_unseen" / first / "game.tw-pddl").read_bytes()
    other = generate_games(tmp_path / "other", {"valid_unseen": 6}, seed=4)
    assert other["splits"]["valid_unseen"] != again["splits"]["valid_unseen"]
    train = {read_json(root / "train" / e["task_id"] / "game.tw-pddl")["pddl_problem"].split("(:init")[1]
             for e in manifest["splits"]["train"]}  # fmt: skip
    for _, _, game in _games_of(root, "valid_seen"):
        assert game["pddl_problem"].split("(:init")[1] not in train


def test_resume_keeps_complete_games(games, tmp_path):
    out = tmp_path / "resume"
    generate_games(out, {"valid_seen": 3}, seed=3)
    entry = load_manifest(out)["splits"]["valid_seen"][1]
    game = out / "valid_seen" / entry["task_id"] / "game.tw-pddl"
    mtime = game.stat().st_mtime_ns
    (out / "manifest.json").unlink()  # an interrupted run: games written, manifest not
    generate_games(out, {"valid_seen": 6}, seed=3)
    assert game.stat().st_mtime_ns == mtime
    assert len(load_manifest(out)["splits"]["valid_seen"]) == 6


def test_bad_input_is_a_one_line_error(tmp_path):
    with pytest.raises(KrillError, match="unknown ALFWorld split"):
        generate_games(tmp_path, {"test": 3}, seed=0)
    with pytest.raises(KrillError, match="non-negative"):
        generate_games(tmp_path, -1, seed=0)
    with pytest.raises(KrillError, match="missing manifest.json"):
        load_manifest(tmp_path)
