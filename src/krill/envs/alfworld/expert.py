"""An expert for ALFWorld games that reads the engine's true state (PDDL facts) and acts on it.

ALFWorld offers two experts: fast-downward's planner (`expert_type=planner`), which takes minutes
per plan on a full room here, and a hand-coded explorer that is "not guaranteed to succeed" and
samples with the global `random`. This one is the planner's plan computed directly: the task types
have fixed shapes (find → take → [clean|heat|cool] → put, or take → use lamp), so reading where the
objects are from the facts gives a shortest-path plan over receptacles in microseconds, from any
state (also after a policy's own moves), deterministically.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

TRANSFORM = {  # task type → (verb, appliance type, fact that marks it done)
    "pick_clean_then_place_in_recep": ("clean", "sinkbasin", "isclean"),
    "pick_heat_then_place_in_recep": ("heat", "microwave", "ishot"),
    "pick_cool_then_place_in_recep": ("cool", "fridge", "iscool"),
}


@dataclass(frozen=True)
class Goal:
    task_type: str
    obj: str  # lower-case type, e.g. "apple"
    recep: str = ""  # lower-case receptacle type ("" for look)
    toggle: str = ""  # lower-case lamp type for look


class World:
    """The facts of one state, indexed for the questions the expert asks."""

    def __init__(self, facts):
        self.agent_loc = ""
        self.recep_loc: dict[str, str] = {}
        self.where: dict[str, str] = {}  # object → receptacle
        self.held: list[str] = []
        self.opened: set[str] = set()
        self.openable: set[str] = set()
        self.otype: dict[str, str] = {}
        self.rtype: dict[str, str] = {}
        self.can_contain: set[tuple[str, str]] = set()
        self.flags: dict[str, set[str]] = defaultdict(set)  # predicate → objects (ishot, istoggled…)
        for fact in facts:
            args = [v.name.strip() for v in fact.arguments]
            name = fact.name
            if name == "atlocation":
                self.agent_loc = args[1]
            elif name == "receptacleatlocation":
                self.recep_loc[args[0]] = args[1]
            elif name == "inreceptacle":
                self.where[args[0]] = args[1]
            elif name == "holds":
                self.held.append(args[1])
            elif name in ("opened", "openable"):
                getattr(self, name).add(args[0])
            elif name == "objecttype":
                self.otype[args[0]] = _bare(args[1])
            elif name == "receptacletype":
                self.rtype[args[0]] = _bare(args[1])
            elif name == "cancontain":
                self.can_contain.add((_bare(args[0]), _bare(args[1])))
            elif len(args) == 1:
                self.flags[name].add(args[0])

    def of_type(self, otype: str) -> list[str]:
        return sorted((o for o, t in self.otype.items() if t == otype), key=_natural)

    def receptacles(self, rtype: str) -> list[str]:
        return sorted((r for r, t in self.rtype.items() if t == rtype), key=_natural)

    def closed(self, recep: str) -> bool:
        return recep in self.openable and recep not in self.opened

    def at(self, recep: str) -> bool:
        return self.recep_loc.get(recep) == self.agent_loc


def _bare(type_name: str) -> str:
    return type_name[:-4] if type_name.endswith("type") else type_name


def _natural(name: str) -> tuple[str, int]:
    base, _, num = name.rpartition(" ")
    return (base, int(num)) if num.isdigit() else (name, 0)


def _reach(w: World, recep: str) -> str | None:
    """The step that brings the agent to an open `recep`, or None when it is there already."""
    if not w.at(recep):
        return f"go to {recep}"
    if w.closed(recep):
        return f"open {recep}"
    return None


def _fetch(w: World, candidates: list[str]) -> str:
    """Go to, open, and take the cheapest candidate object (here first, then no door, then by name)."""

    def cost(o: str) -> tuple[int, int, tuple[str, int]]:
        r = w.where[o]
        return (0 if w.at(r) else 1, 1 if w.closed(r) else 0, _natural(o))

    obj = min(candidates, key=cost)
    recep = w.where[obj]
    return _reach(w, recep) or f"take {obj} from {recep}"


def _put(w: World, obj: str, recep: str) -> str:
    return _reach(w, recep) or f"move {obj} to {recep}"


def _drop_wrong(w: World, obj: str) -> str:
    """Put down an object the task does not need, where it may go (here if possible)."""
    homes = [r for r in sorted(w.rtype, key=_natural) if (w.rtype[r], w.otype.get(obj, "")) in w.can_contain]
    here = [r for r in homes if w.at(r)]
    return _put(w, obj, (here or homes)[0])


def next_action(facts, goal: Goal) -> str | None:
    """The expert's next command in the state `facts` (None if the goal needs nothing more)."""
    w = World(facts)
    if goal.task_type == "look_at_obj_in_light":
        return _look(w, goal)
    targets = w.receptacles(goal.recep)
    if not targets:
        return None
    target = targets[0]
    if goal.task_type == "pick_two_obj_and_place":  # both objects in one receptacle instance
        target = max(targets, key=lambda r: sum(w.where.get(o) == r for o in w.of_type(goal.obj)))
    for held in w.held:
        if w.otype.get(held) != goal.obj:
            return _drop_wrong(w, held)
        if goal.task_type in TRANSFORM:
            verb, appliance, done = TRANSFORM[goal.task_type]
            if held not in w.flags[done]:
                spots = w.receptacles(appliance)
                return f"go to {spots[0]}" if not w.at(spots[0]) else f"{verb} {held} with {spots[0]}"
        return _put(w, held, target)
    done_flag = TRANSFORM[goal.task_type][2] if goal.task_type in TRANSFORM else None
    placed = {
        o
        for o in w.of_type(goal.obj)
        if (
            w.where.get(o) == target
            if goal.task_type == "pick_two_obj_and_place"
            else w.rtype.get(w.where.get(o, "")) == goal.recep
        )
        and (done_flag is None or o in w.flags[done_flag])
    }
    loose = [o for o in w.of_type(goal.obj) if o in w.where and o not in placed]
    return _fetch(w, loose) if loose else None


def _look(w: World, goal: Goal) -> str | None:
    lamps = [lamp for lamp in w.of_type(goal.toggle) if lamp in w.where]
    for held in w.held:
        if w.otype.get(held) != goal.obj:
            return _drop_wrong(w, held)
        if not lamps:
            return None
        lamp = lamps[0]
        if not w.at(w.where[lamp]):
            return f"go to {w.where[lamp]}"
        return f"use {lamp}"
    loose = [o for o in w.of_type(goal.obj) if o in w.where]
    return _fetch(w, loose) if loose else None
