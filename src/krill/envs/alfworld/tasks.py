"""One ALFWorld game from (split, index, seed): a goal the scene supports, a seeded room, its PDDL.

The problem file has the shape ALFWorld's `augment_pddl_states.py` writes (`initial_state.pddl`):
typed objects/receptacles/locations, `receptacleType`, `objectType`, `canContain` for every
receptacle type × object type VAL_RECEPTACLE_OBJECTS allows, affordances (`pickupable`, `cleanable`,
`heatable`, `coolable`, `toggleable`, `sliceable`, `openable`, `isReceptacleObject`),
`inReceptacle`/`objectAtLocation`/`receptacleAtLocation`, the agent's pose, and the goal formula
of `alfworld.gen.goal_library` for the task type. Task wording uses that library's templates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache

from krill.categories import ALFWORLD_TASK_TYPES
from krill.envs.alfworld.scenes import LAMP_HOSTS, Receptacle, Scene, constants, load_scene, make_id
from krill.envs.alfworld.scenes import scene_numbers as split_scenes

TASK_TYPES = tuple(ALFWORLD_TASK_TYPES)  # pick, pick two, look, clean, heat, cool
# The appliance a transformation needs; the domain's CleanObject only accepts SinkBasinType.
APPLIANCE = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable"),
}
DISTRACTOR_P = 0.5  # chance that each other object type of the scene appears (1–2 instances)


@dataclass
class GameSpec:
    """What a game is about, plus where everything starts."""

    split: str
    index: int
    seed: int
    task_type: str
    scene: int
    obj: str
    recep: str = ""  # parent target ("" for look)
    toggle: str = ""  # lamp type for look
    template: str = ""
    placements: list[tuple[str, str]] = field(default_factory=list)  # (object id, receptacle id)
    agent_loc: str = ""

    @property
    def category(self) -> str:
        return ALFWORLD_TASK_TYPES[self.task_type]

    @property
    def description(self) -> str:
        return self.template.format(
            obj=self.obj.lower(), recep=self.recep.lower(), toggle=self.toggle.lower()
        )

    @property
    def folder(self) -> str:
        """ALFWorld's folder naming: `<task_type>-<Obj>-<Mrecep>-<Recep>-<scene>/trial_…`."""
        recep = self.recep or self.toggle
        return f"{self.task_type}-{self.obj}-None-{recep}-{self.scene}/trial_K{self.seed}_{self.index:05d}"

    def traj_data(self) -> dict:
        """The fields of ALFWorld's traj_data.json its loaders and hand-coded expert read, plus krill's."""
        return {
            "task_id": self.folder,
            "task_type": self.task_type,
            "category": self.category,
            "description": self.description,
            "split": self.split,
            "pddl_params": {
                "object_target": self.obj,
                "parent_target": self.recep,
                "toggle_target": self.toggle,
                "mrecep_target": "",
                "object_sliced": False,
            },
            "scene": {"floor_plan": f"FloorPlan{self.scene}", "scene_num": self.scene},
            "turk_annotations": {"anns": [{"task_desc": self.description}]},
            "generator": {"name": "krill", "split": self.split, "index": self.index, "seed": self.seed},
        }


# --- what a scene supports -------------------------------------------------------------------
def _holders(scene: Scene, obj: str, exclude: str = "") -> list[Receptacle]:
    val = constants().VAL_RECEPTACLE_OBJECTS
    return [r for r in scene.receptacles if obj in val[r.type] and r.type != exclude]


@cache
def goal_options(scene: Scene, task_type: str) -> list[tuple[str, str, str]]:
    """Every (object, receptacle, lamp) goal of `task_type` this scene supports (sorted, may be empty)."""
    c = constants()
    if scene.room not in c.GOALS_VALID[task_type]:
        return []
    rtypes = scene.receptacle_types()
    out = []
    if task_type == "look_at_obj_in_light":
        lamps = [lamp for lamp in scene.lamps if any(r.type in LAMP_HOSTS[lamp] for r in scene.receptacles)]
        for lamp in sorted(lamps):
            out += [(o, "", lamp) for o in sorted(scene.object_types) if _holders(scene, o)]
        return out
    objs = scene.object_types
    appliance = ""
    if task_type in APPLIANCE:
        appliance, action = APPLIANCE[task_type]
        if appliance not in rtypes:
            return []
        objs = objs & c.VAL_ACTION_OBJECTS[action]
    for o in sorted(objs):
        for r in sorted(rtypes - {appliance}):
            # the object must be able to start somewhere that does not already satisfy the goal
            if o in c.VAL_RECEPTACLE_OBJECTS[r] and _holders(scene, o, exclude=r):
                out.append((o, r, ""))
    return out


@cache
def supported_scenes(split: str, task_type: str) -> list[int]:
    return [n for n in split_scenes(split) if goal_options(load_scene(n), task_type)]


# --- sampling --------------------------------------------------------------------------------
def task_type_for(index: int, seed: int) -> str:
    """Round-robin over the six types in a seeded order, so every split of ≥6 games has them all."""
    order = list(TASK_TYPES)
    random.Random(f"types-{seed}").shuffle(order)
    return order[index % len(order)]


def sample_game(split: str, index: int, seed: int) -> GameSpec:
    """The game at `index` of `split`: deterministic in (split, index, seed)."""
    rng = random.Random(f"krill-alfworld:{seed}:{split}:{index}")
    task_type = task_type_for(index, seed)
    scene = load_scene(rng.choice(supported_scenes(split, task_type)))
    options = goal_options(scene, task_type)
    obj = rng.choice(
        sorted({o for o, _, _ in options})
    )  # object first: receptacle-rich scenes don't dominate
    _, recep, toggle = rng.choice([opt for opt in options if opt[0] == obj])
    template = rng.choice(_templates(task_type))
    spec = GameSpec(split, index, seed, task_type, scene.num, obj, recep, toggle, template)
    _populate(spec, scene, rng)
    return spec


def _templates(task_type: str) -> list[str]:
    import alfworld.gen.goal_library as glib

    return list(glib.gdict[task_type]["templates"])


def _populate(spec: GameSpec, scene: Scene, rng: random.Random) -> None:
    used: set[str] = set()

    def put(otype: str, host: Receptacle) -> None:
        while True:  # ids are positions; jitter until unique
            x, y, z = host.xyz
            oid = make_id(
                otype, (x + rng.uniform(-0.4, 0.4), y + rng.uniform(0.0, 0.3), z + rng.uniform(-0.4, 0.4))
            )
            if oid not in used:
                used.add(oid)
                spec.placements.append((oid, host.id))
                return

    n = rng.randint(2, 4) if spec.task_type == "pick_two_obj_and_place" else rng.randint(1, 3)
    for _ in range(n):  # targets never start where the goal would already hold
        put(spec.obj, rng.choice(_holders(scene, spec.obj, exclude=spec.recep)))
    for otype in sorted(scene.object_types - {spec.obj}):
        if rng.random() < DISTRACTOR_P and _holders(scene, otype):
            for _ in range(rng.randint(1, 2)):
                put(otype, rng.choice(_holders(scene, otype)))
    for lamp in sorted(scene.lamps):
        hosts = [r for r in scene.receptacles if r.type in LAMP_HOSTS[lamp]]
        if hosts:
            put(lamp, rng.choice(hosts))
    x, z = rng.choice(scene.free_points)
    spec.agent_loc = f"loc|{round(x / 0.25)}|{round(z / 0.25)}|{rng.randrange(4)}|30"
