"""Write a GameSpec as ALFWorld's PDDL problem and `game.tw-pddl` JSON (domain + grammar + problem)."""

from __future__ import annotations

from functools import cache

from krill.envs.alfworld.scenes import constants, load_scene, static_receptacle_types
from krill.envs.alfworld.tasks import GameSpec

_FIX = (("-", "_minus_"), ("#", "-"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_"))


def fix_chars(text: str) -> str:
    """ALFWorld's `fix_pddl_str_chars`: AI2-THOR ids → PDDL names; `#` marks a PDDL dash."""
    for old, new in _FIX:  # in this order, no replacement creates a character replaced later
        text = text.replace(old, new)
    return text


@cache
def domain_text() -> str:
    from alfworld.info import ALFRED_PDDL_PATH

    with open(ALFRED_PDDL_PATH, encoding="utf-8") as f:
        return f.read()


@cache
def grammar_text() -> str:
    from alfworld.info import ALFRED_TWL2_PATH

    with open(ALFRED_TWL2_PATH, encoding="utf-8") as f:
        return f.read()


def goal_text(spec: GameSpec) -> str:
    import alfworld.gen.goal_library as glib

    goal = glib.gdict[spec.task_type]["pddl"].format(
        obj=spec.obj, recep=spec.recep, toggle=spec.toggle, mrecep=""
    )
    return fix_chars(goal)  # also closes the `(define` (as in ALFWorld's goal library)


def _otype(object_id: str) -> str:
    return object_id.split("|")[0]


def problem_text(spec: GameSpec) -> str:
    """The PDDL problem of a game, as ALFWorld's initial_state.pddl lays it out."""
    c = constants()
    scene = load_scene(spec.scene)
    recep_by_id = {r.id: r for r in scene.receptacles}
    rtypes = sorted(static_receptacle_types())
    otypes = sorted(set(c.OBJECTS) - set(rtypes) - {"Sink", "Bathtub"})
    objs = [(oid, _otype(oid)) for oid, _ in spec.placements]
    scene_otypes = {t for _, t in objs}
    locs = sorted({r.loc for r in scene.receptacles} | {spec.agent_loc})

    decl = [("agent1", "agent")]
    decl += [(f"{t}Type", "otype") for t in otypes]
    decl += [(f"{t}Type", "rtype") for t in rtypes]
    decl += [(oid, "object") for oid, _ in objs]
    decl += [(r.id, "receptacle") for r in scene.receptacles]
    decl += [(loc, "location") for loc in locs]

    act = c.VAL_ACTION_OBJECTS
    init = [f"(receptacleType {r.id} {r.type}Type)" for r in scene.receptacles]
    init += [f"(objectType {oid} {t}Type)" for oid, t in objs]
    for rt in sorted(scene.receptacle_types()):
        init += [
            f"(canContain {rt}Type {ot}Type)"
            for ot in sorted(scene_otypes)
            if ot in c.VAL_RECEPTACLE_OBJECTS[rt]
        ]
    init += [f"(pickupable {oid})" for oid, t in objs if t not in act["Toggleable"]]
    init += [f"(isReceptacleObject {oid})" for oid, t in objs if t in c.MOVABLE_RECEPTACLES_SET]
    init += [f"(openable {r.id})" for r in scene.receptacles if r.type in c.OPENABLE_CLASS_SET]
    init.append(f"(atLocation agent1 {spec.agent_loc})")
    for pred, key in (("cleanable", "Cleanable"), ("heatable", "Heatable"), ("coolable", "Coolable")):
        init += [f"({pred} {oid})" for oid, t in objs if t in act[key]]
    init += [f"(toggleable {oid})" for oid, t in objs if t in act["Toggleable"]]
    init += [f"(sliceable {oid})" for oid, t in objs if t in act["Sliceable"]]
    # ALFWorld marks target objects that start in a fridge as already cool (augment_pddl_states.py)
    init += [
        f"(isCool {oid})"
        for oid, rid in spec.placements
        if _otype(oid) == spec.obj and recep_by_id[rid].type == "Fridge"
    ]
    init += [f"(inReceptacle {oid} {rid})" for oid, rid in spec.placements]
    init += [f"(receptacleAtLocation {r.id} {r.loc})" for r in scene.receptacles]
    init += [f"(objectAtLocation {oid} {recep_by_id[rid].loc})" for oid, rid in spec.placements]

    pad = "\n        "
    text = (
        f"\n(define (problem plan_{spec.split}_{spec.index})\n    (:domain alfred)\n    (:objects{pad}"
        + pad.join(f"{fix_chars(name)} - {kind}" for name, kind in decl)
        + f"\n        )\n    (:init{pad}"
        + pad.join(fix_chars(f) for f in init)
        + "\n        )\n"
    )
    return text + goal_text(spec)


def game_json(spec: GameSpec, walkthrough: list[str] | None = None) -> dict:
    """The `game.tw-pddl` content ALFWorld's loaders read (AlfredTWEnv requires the `solvable` key).

    Generated games are solvable by construction: every target starts in a reachable receptacle,
    and the scene has the appliance, lamp and goal receptacle the task needs (the tests play the
    expert through samples of every type on the engine to check it).
    """
    return {
        "pddl_domain": domain_text(),
        "grammar": grammar_text().replace("UNKNOWN GOAL", spec.description),
        "pddl_problem": problem_text(spec),
        "solvable": True,
        "walkthrough": walkthrough,
    }
