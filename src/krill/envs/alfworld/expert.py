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

from krill.envs.alfworld.scenes import LAMP_HOSTS as _HOSTS

LAMP_HOSTS = {lamp.lower(): {h.lower() for h in hosts} for lamp, hosts in _HOSTS.items()}

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

    def __init__(self, facts, seen: set[str] | None = None):
        self.seen = seen  # receptacles whose contents the agent has observed (None: it knows all)
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

    def known(self, obj: str) -> bool:
        """Where `obj` is, if the agent could know it (it saw inside that receptacle)."""
        return obj in self.where and (self.seen is None or self.where[obj] in self.seen)

    def explore(self, host_types: set[str], last: str = "") -> str | None:
        """Visit (and open) the next unseen receptacle that may hold what is searched for.

        Receptacles of type `last` (the goal's) are searched last: a task never starts solved.
        """
        unseen = [r for r in self.rtype if self.seen is not None and r not in self.seen]
        likely = [r for r in unseen if self.rtype[r] in host_types] or unseen
        if not likely:
            return None
        recep = min(likely, key=lambda r: (self.rtype[r] == last, not self.at(r), _natural(r)))
        return _reach(self, recep) or f"examine {recep}"  # here already (it shares our spot)

    def hosts(self, otype: str) -> set[str]:
        return {rt for rt, ot in self.can_contain if ot == otype}


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


def next_action(facts, goal: Goal, seen: set[str] | None = None) -> str | None:
    """The expert's next command in the state `facts` (None if the goal needs nothing more).

    `seen=None`: the oracle, which knows where everything is (shortest plans). With the set of
    receptacles the agent has looked into, the expert searches like a person (and like ALFWorld's
    hand-coded expert): it only uses objects it has seen and otherwise visits the unseen
    receptacles that may hold the object (VAL_RECEPTACLE_OBJECTS priors, via `canContain`).
    """
    w = World(facts, seen)
    if goal.task_type == "look_at_obj_in_light":
        return _look(w, goal)
    targets = w.receptacles(goal.recep)
    if not targets:
        return None
    target = targets[0]
    if goal.task_type == "pick_two_obj_and_place":  # both objects in one receptacle instance
        target = max(targets, key=lambda r: sum(w.known(o) and w.where[o] == r for o in w.of_type(goal.obj)))
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
    loose = [o for o in w.of_type(goal.obj) if w.known(o) and o not in placed]
    if loose:
        return _fetch(w, loose)
    return w.explore(w.hosts(goal.obj), last=goal.recep) if w.seen is not None else None


def _look(w: World, goal: Goal) -> str | None:
    lamps = [lamp for lamp in w.of_type(goal.toggle) if w.known(lamp)]
    for held in w.held:
        if w.otype.get(held) != goal.obj:
            return _drop_wrong(w, held)
        if not lamps:
            return w.explore(set(LAMP_HOSTS.get(goal.toggle, ()))) if w.seen is not None else None
        lamp = lamps[0]
        if not w.at(w.where[lamp]):
            return f"go to {w.where[lamp]}"
        return f"use {lamp}"
    loose = [o for o in w.of_type(goal.obj) if w.known(o)]
    if loose:
        return _fetch(w, loose)
    return w.explore(w.hosts(goal.obj)) if w.seen is not None else None


def observed(action: str, facts) -> str | None:
    """The receptacle whose contents `action` (just played, valid) showed the agent, if any."""
    for verb in ("go to ", "open ", "examine "):
        if action.startswith(verb):
            recep = action[len(verb) :]
            w = World(facts)
            return recep if recep in w.rtype and not w.closed(recep) else None
    return None
