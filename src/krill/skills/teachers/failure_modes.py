"""Failure modes of failed ALFWorld episodes, and the skills and common mistakes they teach.

`detect_modes` names what went wrong in one episode (invalid actions, loops, step limit, object
never found or seen and not taken, wrong object or receptacle, transformation skipped, only one of
two objects placed). `failure_proposals` counts the modes over many episodes and writes one skill
and one common mistake per mode, general when it occurs in two or more categories.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from krill.schema import GENERAL, CommonMistake, Skill
from krill.skills.teachers.proposals import make_mistake, make_skill
from krill.skills.trajectory_facts import TRANSFORMS, ParsedTrajectory

# why an invalid command failed, from the agent's tracked location and hands → the fix
INVALID_FIX = {
    "take while holding something": "hold one object at a time: put the held one down first",
    "take from a place you are not at": "go to the receptacle before taking from it",
    "take an object that is not there": "take only objects the last observation lists, with their number",
    "put without holding the object": "take the object before putting it anywhere",
    "put at a place you are not at": "go to the receptacle before putting into it",
    "use an appliance you are not at": "go to the appliance (microwave, fridge, sinkbasin) first",
    "transform without holding the object": "take the object before heating, cooling or cleaning it",
    "open/close a receptacle you are not at": "go to a receptacle before opening it",
    "open/close that changed nothing": "open a receptacle only once, and only if it is closed",
    "go to a place that does not exist": "go only to places listed in the room description",
    "go to where you already are": "once there, act on the place (open, take, put) instead of going again",
    "unknown command": "use only commands from the admissible list",
}


def invalid_reasons(ep: ParsedTrajectory) -> list[str]:
    """For each invalid action, the likely reason given where the agent stood and what it held."""
    here, held, out = "", "", []
    for a in ep.acts:
        if a.valid:
            here = a.r_name if a.verb == "go" else here
            held = a.o_name if a.verb == "take" else ("" if a.verb == "put" else held)
            continue
        if a.verb == "take":
            why = (
                "take while holding something"
                if held
                else "take from a place you are not at"
                if a.r_name != here
                else "take an object that is not there"
            )
        elif a.verb == "put":
            why = "put without holding the object" if a.o_name != held else "put at a place you are not at"
        elif a.verb in ("heat", "cool", "clean"):
            why = (
                "transform without holding the object"
                if a.o_name != held
                else "use an appliance you are not at"
            )
        elif a.verb in ("open", "close"):
            why = (
                "open/close a receptacle you are not at"
                if a.r_name != here
                else "open/close that changed nothing"
            )
        elif a.verb == "go":
            why = "go to where you already are" if a.r_name == here else "go to a place that does not exist"
        else:
            why = "unknown command"
        out.append(why)
    return out


def detect_modes(ep: ParsedTrajectory, step_limit: int) -> dict[str, str]:
    """Failure modes of one failed episode → a short detail string each."""
    modes: dict[str, str] = {}
    reasons = invalid_reasons(ep)
    if reasons and len(reasons) >= max(2, len(ep.acts) // 5):
        modes["invalid"] = Counter(reasons).most_common(1)[0][0]
    texts = [a.text for a in ep.acts]
    run, best, best_act = 1, 1, ""
    for i in range(1, len(texts)):
        run = run + 1 if texts[i] == texts[i - 1] else 1
        if run > best:
            best, best_act = run, texts[i]
    most, most_n = Counter(texts).most_common(1)[0] if texts else ("", 0)
    if best >= 3 or most_n >= 4:
        modes["loop"] = best_act if best >= 3 else most
    limit = int(ep.traj.metadata.get("max_steps") or step_limit)
    if len(ep.acts) >= limit:
        modes["step_limit"] = str(limit)
    took = ep.first("take", ep.target)
    if took is None:
        pat = re.compile(rf"\b{re.escape(ep.target or '?')} \d", re.I)  # "apple 1", not "happens"
        seen = any(pat.search(s.observation) for s in ep.traj.steps)
        wrong = next((a.obj for a in ep.acts if a.valid and a.verb == "take" and a.obj != ep.target), None)
        if wrong:
            modes["wrong_object"] = wrong
        modes["seen_not_taken" if seen else "never_found"] = ep.target or "object"
        return modes
    put_other = next(
        (a.recep for a in ep.acts[took:] if a.valid and a.verb == "put" and a.recep != ep.dest
         and a.recep not in ("microwave", "fridge", "sinkbasin")), None,
    )  # fmt: skip
    if put_other and ep.category != "Look":
        modes["wrong_receptacle"] = put_other
    if ep.category in TRANSFORMS:
        verb = TRANSFORMS[ep.category][0]
        done, put = ep.first(verb), ep.first("put")
        if done is None:
            modes["skipped_transform"] = ep.target or "object"
        elif put is not None and put < done:
            modes["placed_before_transform"] = ep.target or "object"
    if ep.category == "Look" and ep.first("use") is None:
        modes["skipped_transform"] = ep.target or "object"
    if (
        ep.category == "PickTwo"
        and sum(1 for a in ep.acts if a.valid and a.verb == "put" and a.recep == ep.dest) == 1
    ):
        modes["only_one"] = ep.target or "object"
    return modes


# mode → (skill name, what went wrong, how to avoid); {d} = the most common detail
MODE_TEXT = {
    "invalid": ("Use only admissible actions", "wasted steps on invalid actions ('Nothing happens.'), most often: {d}",
                "{fix}; copy the next action from the admissible list"),
    "loop": ("Break repetition loops", "repeated one action without progress (e.g. '{d}')",
             "after an action that changed nothing, try another place or action"),
    "step_limit": ("Spend the step budget on the likeliest places", "ran out of steps (limit {d})",
                   "go first to where such objects usually are and do not revisit places"),
    "never_found": ("Search systematically until the object is found", "never saw the target object (e.g. {d})",
                    "visit new receptacles, opening closed ones, usual locations first"),
    "seen_not_taken": ("Take the object as soon as it is visible", "saw the target ({d}) in an observation but never took it",
                       "take the target as soon as an observation lists it"),
    "wrong_object": ("Match the exact object type in the task", "took a different object ({d}) instead of the target",
                     "compare the object's type word with the task before taking it"),
    "wrong_receptacle": ("Place the object only in the named receptacle", "put the object in a wrong receptacle ({d})",
                         "go to the receptacle type named in the task before using put"),
    "skipped_transform": ("Never skip the required step", "took the {d} but never did '{t}'",
                          "do '{t}' right after taking the object, as the successes did"),
    "placed_before_transform": ("Transform before placing", "placed the {d} before doing '{t}'",
                                "do '{t}' while holding the object, then go to the target receptacle"),
    "only_one": ("Deliver both objects", "placed only one of the two objects ({d})",
                 "after placing the first object, search again for the second copy and place it too"),
}  # fmt: skip


# modes tied to one category's key step: always filed per category, with that category's tool
PER_CATEGORY_MODES = ("skipped_transform", "placed_before_transform", "only_one")
DEFAULT_TOOLS = {"Heat": "heat <object> with microwave", "Cool": "cool <object> with fridge",
                 "Clean": "clean <object> with sinkbasin", "Look": "use desklamp"}  # fmt: skip


def tools_from(successes: list[ParsedTrajectory]) -> dict[str, str]:
    """Category → the key command successes used ('heat <object> with microwave'), learned from the data."""
    seen: dict[str, Counter] = defaultdict(Counter)
    for ep in successes:
        for a in ep.acts:
            if a.valid and a.verb in ("heat", "cool", "clean"):
                seen[ep.category][f"{a.verb} <object> with {a.recep}"] += 1
            elif a.valid and a.verb == "use":
                seen[ep.category][f"use {a.recep}"] += 1
    return {c: cnt.most_common(1)[0][0] for c, cnt in seen.items()}


def infer_step_limit(eps: list[ParsedTrajectory], default: int) -> int:
    """The step cap the failures ran under: `default`, or a shorter length most failures stopped at.

    Collect/RL may cap episodes below the env's limit (`--max-steps`) without recording it; many
    failures ending at exactly the same, longest length is that cap.
    """
    lengths = Counter(len(ep.acts) for ep in eps)
    if not lengths:
        return default
    longest = max(lengths)
    if longest < default and longest >= 5 and lengths[longest] >= max(2, 0.3 * len(eps)):
        return longest
    return default


def failure_proposals(
    eps: list[ParsedTrajectory], step_limit: int, tools: dict[str, str] | None = None
) -> tuple[list[Skill], list[CommonMistake]]:
    """One skill + one common mistake per failure mode; general when it occurs in ≥2 categories."""
    tools = {**DEFAULT_TOOLS, **(tools or {})}
    hits: dict[str, list[ParsedTrajectory]] = defaultdict(list)
    details: dict[str, Counter] = defaultdict(Counter)
    step_limit = infer_step_limit(eps, step_limit)
    for ep in eps:
        ep.modes = detect_modes(ep, step_limit)
        for mode, detail in ep.modes.items():
            hits[mode].append(ep)
            details[mode][detail] += 1
    totals = Counter(ep.category for ep in eps)
    skills, mistakes = [], []
    for mode in MODE_TEXT:
        group = hits.get(mode)
        if not group:
            continue
        cats = Counter(ep.category for ep in group)
        targets = list(cats) if mode in PER_CATEGORY_MODES or len(cats) < 2 else [GENERAL]
        for cat in targets:
            sub = [ep for ep in group if cat in (GENERAL, ep.category)]
            det = details[mode] if cat == GENERAL else Counter(ep.modes[mode] for ep in sub)
            tool = tools.get(cat, "the required step")
            skills.append(_mode_skill(mode, cat, sub, cats, totals, det, tool))
            mistakes.append(_mode_mistake(mode, cat, sub, cats, totals, det, tool))
    return skills, mistakes


MODE_WHEN = {
    "invalid": "Choosing the next command, especially take/put/open",
    "loop": "The last action did not change the observation",
    "step_limit": "Many steps used and the object is still not found or placed",
    "never_found": "The target object has not been seen yet",
    "seen_not_taken": "An observation lists the task's object",
    "wrong_object": "Before taking an object",
    "wrong_receptacle": "Before putting the object down",
    "skipped_transform": "Holding the task's object, before finishing",
    "placed_before_transform": "Holding the task's object, before going to the target receptacle",
    "only_one": "After placing the first of two objects",
}


def _mode_counts(cats: Counter, totals: Counter) -> str:
    return ", ".join(f"{c} {n}/{totals[c]}" for c, n in cats.most_common())


def _mode_skill(
    mode: str, cat: str, group, cats: Counter, totals: Counter, details: Counter, tool: str
) -> Skill:
    name, what, how, d = _mode_texts(mode, tool, group, details)
    scope = "failed episodes" if cat == GENERAL else f"failed {cat} episodes"
    n = len(group) if cat == GENERAL else cats[cat]
    total = sum(totals.values()) if cat == GENERAL else totals[cat]
    principle = f"{n} of {total} {scope} {what.format(d=d)}. Instead, {how.format(d=d)}."
    when = MODE_WHEN[mode] + ("" if cat == GENERAL else f" ({cat} tasks)")
    label = name if cat == GENERAL else f"{name} ({cat})"
    return make_skill(label, principle, when, cat, [ep.tid for ep in group], False)


def _mode_texts(
    mode: str, tool: str, group: list[ParsedTrajectory], details: Counter
) -> tuple[str, str, str, str]:
    """(name, what went wrong, how to avoid it, most common detail) for one mode, `{t}` filled in."""
    name, what, how = MODE_TEXT[mode]
    d = details.most_common(1)[0][0]
    return name, what.replace("{t}", tool), _how(mode, how, tool, group, d), d


def _how(mode: str, how: str, tool: str, group: list[ParsedTrajectory], d: str) -> str:
    """The fix; for invalid actions, the fixes of the two most frequent reasons in this group."""
    how = how.replace("{t}", tool)
    if mode != "invalid":
        return how
    top = Counter(r for ep in group for r in invalid_reasons(ep)).most_common(2) or [(d, 0)]
    return how.replace("{fix}", "; ".join(INVALID_FIX.get(r, "check the command") for r, _ in top))


def _mode_mistake(
    mode: str, cat: str, group, cats: Counter, totals: Counter, details: Counter, tool: str
) -> CommonMistake:
    _, what, how, d = _mode_texts(mode, tool, group, details)
    alt = ", ".join(f"'{x}' ({k})" for x, k in details.most_common(3))
    counts = _mode_counts(cats if cat == GENERAL else Counter({cat: cats[cat]}), totals)
    return make_mistake(
        description=f"The agent {what.format(d=d)}",
        why=f"{len(group)} failed episodes ({counts}); frequent: {alt}",
        how=how.format(d=d)[0].upper() + how.format(d=d)[1:] + ".",
        category=None if cat == GENERAL else cat,
        tids=[ep.tid for ep in group],
    )
