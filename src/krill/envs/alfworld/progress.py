"""ALFWorld progress: partial credit for the subgoals of a task type, read from the game's PDDL facts.

With only the win rewarded, a small policy's GRPO groups rarely differ (every episode scores 0) and
nothing is learned. Progress rewards for subgoals (RetroAgent, arXiv:2603.08561; SPA-RL,
arXiv:2505.20732) give the group a gradient before the first win. The subgoals of each task type:

    task type                        subgoals, in order (the last one is the win)
    pick_and_place_simple            seen, held, placed
    pick_two_obj_and_place           seen, held, one placed, both placed
    pick_clean_then_place_in_recep   seen, held, cleaned, placed
    pick_heat_then_place_in_recep    seen, held, heated, placed
    pick_cool_then_place_in_recep    seen, held, cooled, placed
    look_at_obj_in_light             seen, held, lamp seen, lamp used

- seen: an object of the goal type is held or known (in a receptacle the agent has looked into);
- held: the agent holds an object of the goal type;
- one placed: a known goal object lies in a receptacle of the goal type;
- cleaned/heated/cooled: a held goal object has the `isclean`/`ishot`/`iscool` fact (ALFWorld marks
  target objects that start in a fridge as cool already: taking one out reaches held and cooled at once);
- lamp seen: a goal object is held and a lamp of the goal's type is known;
- the last subgoal (placed, both placed, lamp used) is the game's own `won` (`subgoal_names` calls
  it that).

    reached = the furthest subgoal whose condition holds now (total when won)
    progress = reached / total
    r_t = 10 · (max_{s≤t} reached_s − max_{s<t} reached_s) / total        (reward: progress)

A subgoal's condition stands for those before it (the object was seen to be held; the lamp and the
treatment count with the object in hand), so reached is how far along the chain the state is now,
not how many conditions hold at once. The env keeps the running maximum (putting an object down
does not undo having held it) and pays each of its rises, so a return is 10 × the best progress and
a won game totals exactly 10, as with the win-only reward. One placed stands for held because
targets never start in a receptacle of the goal type in generated games; in real ALFWorld data a
pick-two target found already in place counts as one placed.

Progress comes from the facts and the set of receptacles looked into, never from the observation
text: a policy cannot earn it by wording, only by changing (or uncovering) the game's state. At reset
nothing has been looked into and nothing is held, so every game starts at 0.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from krill.envs.alfworld.expert import Goal, World

REWARD_WON = 10.0  # the benchmark's reward for a win; progress pays shares of it

Check = Callable[[World, Goal], bool]


def _targets(w: World, goal: Goal) -> list[str]:
    return w.of_type(goal.obj)


def _held(w: World, goal: Goal) -> bool:
    return any(w.otype.get(o) == goal.obj for o in w.held)


def _seen(w: World, goal: Goal) -> bool:
    """Held, or where the agent has looked: what it could know about, not what the facts hold."""
    return _held(w, goal) or any(w.known(o) for o in _targets(w, goal))


def _one_placed(w: World, goal: Goal) -> bool:
    return any(w.known(o) and w.rtype.get(w.where[o]) == goal.recep for o in _targets(w, goal))


def _has_flag(flag: str) -> Check:
    # In hand, like the lamp: the treatment stands for "held" too, and the agent just did it (or took
    # out a target the game marks as already treated). Put down again, the env's running max keeps it.
    def check(w: World, goal: Goal) -> bool:
        return any(o in w.flags[flag] for o in w.held if w.otype.get(o) == goal.obj)

    return check


def _lamp_seen(w: World, goal: Goal) -> bool:
    return _held(w, goal) and any(w.known(lamp) for lamp in w.of_type(goal.toggle))


# task type → its subgoals before the win, in order (the win is the last subgoal of every type)
SUBGOALS: dict[str, tuple[tuple[str, Check], ...]] = {
    "pick_and_place_simple": (("seen", _seen), ("held", _held)),
    "pick_two_obj_and_place": (("seen", _seen), ("held", _held), ("one placed", _one_placed)),
    "pick_clean_then_place_in_recep": (("seen", _seen), ("held", _held), ("cleaned", _has_flag("isclean"))),
    "pick_heat_then_place_in_recep": (("seen", _seen), ("held", _held), ("heated", _has_flag("ishot"))),
    "pick_cool_then_place_in_recep": (("seen", _seen), ("held", _held), ("cooled", _has_flag("iscool"))),
    "look_at_obj_in_light": (("seen", _seen), ("held", _held), ("lamp seen", _lamp_seen)),
}


def subgoal_names(task_type: str) -> tuple[str, ...]:
    """The subgoals of `task_type` in order, the win last (an unknown type has only the win).

    >>> subgoal_names("pick_cool_then_place_in_recep")
    ('seen', 'held', 'cooled', 'won')
    >>> subgoal_names("pick_and_slice")
    ('won',)
    """
    return tuple(name for name, _ in SUBGOALS.get(task_type, ())) + ("won",)


def subgoals(facts: Iterable, goal: Goal, seen: Collection[str], won: bool) -> tuple[int, int]:
    """(reached, total): how far along its subgoal chain the state `facts` is (see module docstring).

    `seen`: the receptacles whose contents the agent has observed (the env's record; never None
    here, since the oracle's "knows everything" would credit subgoals the agent never reached).
    """
    checks = SUBGOALS.get(goal.task_type, ())
    total = len(checks) + 1
    if won:
        return total, total
    w = World(facts, set(seen))
    return max((i + 1 for i, (_, check) in enumerate(checks) if check(w, goal)), default=0), total


def progress(facts: Iterable, goal: Goal, seen: Collection[str], won: bool) -> float:
    """reached / total, in [0, 1]; 1.0 exactly when `won`."""
    reached, total = subgoals(facts, goal, seen, won)
    return reached / total


def progress_reward(best_before: int, best_now: int, total: int) -> float:
    """10 · (rise of the running maximum of reached subgoals) / total: what one step earns.

    Paid as integer counts over `total`, not as differences of fractions, so the rises of one
    episode add up to exactly 10 (no 9.999…) when it is won.

    >>> progress_reward(0, 1, 4), progress_reward(1, 4, 4), progress_reward(3, 2, 4)
    (2.5, 7.5, 0.0)
    >>> progress_reward(0, 1, 3) + progress_reward(1, 3, 3)
    10.0
    """
    return REWARD_WON * max(0, best_now - best_before) / total
