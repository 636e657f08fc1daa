"""AI2-THOR floor plans as the `alfworld` package ships them, turned into ALFWorld scenes.

A scene is its receptacles (AI2-THOR object ids, types and the agent pose from which each is
reached, `loc|x|z|rotation|horizon` as ALFWorld writes it) and the object types that occur in it.
`FloorPlan*-openable.json` gives most receptacles with their real ids and poses; receptacle types that
`FloorPlan*-objects.json` lists without an instance there (garbage cans, stove burners, toasters,
towel holders …) get instances placed on the scene's navigable grid (`FloorPlan*-layout.npy`),
seeded by the scene number so every game of a scene sees the same room.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from krill.errors import KrillError

GRID = 0.25  # metres per navigation grid cell (AI2-THOR AGENT_STEP_SIZE)
LAMPS = ("DeskLamp", "FloorLamp")
BASINS = {"SinkBasin": "Sink", "BathtubBasin": "Bathtub"}  # AI2-THOR ids: Sink|x|y|z|SinkBasin
# Fixtures a lamp stands on or beside. Lamps are not in VAL_RECEPTACLE_OBJECTS (they are not
# movable), but ALFWorld's look goal needs `(inReceptacle lamp r)` so the agent can reach and use it.
LAMP_HOSTS = {
    "DeskLamp": ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "DiningTable", "TVStand"),
    "FloorLamp": ("SideTable", "Dresser", "Desk", "ArmChair", "Sofa", "CoffeeTable", "TVStand", "Bed"),
}
EXTRA_INSTANCES = {"StoveBurner": 4}  # kitchens have four burners; other synthesized types get one


@dataclass(frozen=True)
class Receptacle:
    id: str  # AI2-THOR object id, e.g. "Cabinet|+00.68|+00.50|-02.20"
    type: str  # e.g. "Cabinet", "SinkBasin"
    loc: str  # "loc|x|z|rot|horizon"
    xyz: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    num: int
    room: str  # Kitchen | LivingRoom | Bedroom | Bathroom
    receptacles: tuple[Receptacle, ...]
    object_types: frozenset[str]  # movable objects of the scene (VAL_RECEPTACLE_OBJECTS members)
    lamps: frozenset[str]
    free_points: tuple[tuple[float, float], ...]  # navigable points, for the agent's start

    @property
    def floor_plan(self) -> str:
        return f"FloorPlan{self.num}"

    def receptacle_types(self) -> set[str]:
        return {r.type for r in self.receptacles}

    def of_type(self, rtype: str) -> list[Receptacle]:
        return [r for r in self.receptacles if r.type == rtype]


def constants():
    import alfworld.gen.constants as c

    return c


def layouts_dir() -> Path:
    import alfworld.gen

    return Path(alfworld.gen.__path__[0]) / "layouts"


def room_of(num: int) -> str:
    for room, nums in constants().SCENE_TYPE.items():
        if num in nums:
            return room
    raise KrillError(f"floor plan {num} has no room type")


def scene_numbers(split: str) -> list[int]:
    """ALFWorld's split of floor plans: train/valid_seen use train rooms, valid_unseen the test rooms."""
    c = constants()
    if split in ("train", "valid_seen"):
        return list(c.TRAIN_SCENE_NUMBERS)
    if split == "valid_unseen":
        return list(c.TEST_SCENE_NUMBERS)
    raise KrillError(f"unknown ALFWorld split {split!r}; known: train, valid_seen, valid_unseen")


@cache
def movable_types() -> frozenset[str]:
    """Object types a receptacle may hold (VAL_RECEPTACLE_OBJECTS), without sliced variants."""
    objs = set().union(*constants().VAL_RECEPTACLE_OBJECTS.values())
    return frozenset(o for o in objs if not o.endswith("Sliced"))


def static_receptacle_types() -> set[str]:
    c = constants()
    return set(c.VAL_RECEPTACLE_OBJECTS) - set(c.MOVABLE_RECEPTACLES)


def to_loc(point: list[float] | tuple[float, ...]) -> str:
    x, z, rot, horizon = point
    return f"loc|{round(x / GRID)}|{round(z / GRID)}|{int(rot) // 90 % 4}|{int(horizon)}"


def _parse_id(object_id: str) -> tuple[str, tuple[float, float, float]]:
    parts = object_id.split("|")
    rtype = parts[4] if len(parts) > 4 else parts[0]
    return rtype, (float(parts[1]), float(parts[2]), float(parts[3]))


def make_id(otype: str, xyz: tuple[float, float, float]) -> str:
    """An AI2-THOR style id; basins keep AI2-THOR's `Sink|…|SinkBasin` shape (ALFWorld's demangler relies on it)."""
    coords = "|".join(f"{v:+06.2f}" for v in xyz)
    if otype in BASINS:
        return f"{BASINS[otype]}|{coords}|{otype}"
    return f"{otype}|{coords}"


@cache
def load_scene(num: int) -> Scene:
    """Read one floor plan from the `alfworld` package (cached: scenes are immutable)."""
    root = layouts_dir()
    try:
        kinds = set(json.loads((root / f"FloorPlan{num}-objects.json").read_text("utf-8")))
        openable = json.loads((root / f"FloorPlan{num}-openable.json").read_text("utf-8"))
        points = np.load(root / f"FloorPlan{num}-layout.npy")
    except FileNotFoundError as exc:
        raise KrillError(
            f"floor plan {num} is not shipped by the alfworld package", path=exc.filename
        ) from None
    statics = static_receptacle_types()
    receps = []
    for oid, point in sorted(openable.items()):
        rtype, xyz = _parse_id(oid)
        if rtype in statics:
            receps.append(Receptacle(oid, rtype, to_loc(point), xyz))
    rng = random.Random(f"scene-{num}")
    free = [tuple(float(v) for v in p) for p in points.tolist()]
    have = {r.type for r in receps}
    for rtype in sorted((kinds & statics) - have):
        for _ in range(EXTRA_INSTANCES.get(rtype, 1)):
            x, z = rng.choice(free)
            xyz = (x + rng.uniform(-0.6, 0.6), rng.uniform(0.0, 1.0), z + rng.uniform(-0.6, 0.6))
            receps.append(
                Receptacle(make_id(rtype, xyz), rtype, to_loc((x, z, rng.choice((0, 90, 180, 270)), 30)), xyz)
            )
    used = {tuple(r.loc.split("|")[1:3]) for r in receps}
    starts = tuple(p for p in free if (str(round(p[0] / GRID)), str(round(p[1] / GRID))) not in used)
    return Scene(
        num=num,
        room=room_of(num),
        receptacles=tuple(receps),
        object_types=frozenset(kinds & movable_types()),
        lamps=frozenset(kinds & set(LAMPS)),
        free_points=starts or tuple(free),
    )
