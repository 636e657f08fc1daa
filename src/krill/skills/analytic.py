"""The offline teacher: skills computed from the trajectories themselves, no model needed.

Successes give each category's action plan (objects and places replaced by roles: find → take →
heat with microwave → put in target), where target objects were found and how fast, and ordering
facts (open closed receptacles first). Failures give failure modes (invalid actions, loops, step
limit, transformation skipped, wrong object or receptacle, object never found). Every statement
cites its counts and every skill carries the ids of the trajectories it was computed from, so two
different sets of trajectories give two different banks. WebShop trajectories go to `webshop_skills`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from krill.categories import ALFWORLD_CATEGORIES, category_from_task
from krill.config import KrillConfig
from krill.schema import GENERAL, CommonMistake, Skill, Trajectory
from krill.skills.compress_traj import action_validity
from krill.skills.teacher_prompts import Proposals, make_mistake, make_skill

TRANSFORMS = {"Heat": ("heat", "heated"), "Cool": ("cool", "cooled"), "Clean": ("clean", "cleaned")}
_ARTICLES = r"(?:the |a |an |some )?"
_ADJ = r"(?:hot |heated |cool |cooled |cold |clean |cleaned |chilled )?"
_PREP = r"(?:in|on|in/on|into|onto|to)"
_TASK_PATTERNS = [
    rf"(?:find|put) two (?P<o>\w+) and put them {_PREP} {_ARTICLES}(?P<d>\w+)",
    rf"put two (?P<o>\w+) {_PREP} {_ARTICLES}(?P<d>\w+)",
    rf"(?:look at|examine) {_ARTICLES}(?P<o>\w+) (?:under|with|using|in the light of) {_ARTICLES}(?P<d>\w+)",
    rf"(?:heat|cool|clean|find|pick up|take) {_ARTICLES}(?P<o>\w+) and put it {_PREP} {_ARTICLES}(?P<d>\w+)",
    rf"(?:put|place|move) {_ARTICLES}{_ADJ}(?P<o>\w+) {_PREP} {_ARTICLES}(?P<d>\w+)",
]
_ACTION_PATTERNS = [
    ("go", r"go to (?P<r>.+)"),
    ("take", r"(?:take|pick up) (?P<o>.+?) from (?P<r>.+)"),
    ("put", rf"(?:put|move|place) (?P<o>.+?) {_PREP} (?P<r>.+)"),
    ("open", r"open (?P<r>.+)"),
    ("close", r"close (?P<r>.+)"),
    ("heat", r"heat (?P<o>.+?) with (?P<r>.+)"),
    ("cool", r"cool (?P<o>.+?) with (?P<r>.+)"),
    ("clean", r"clean (?P<o>.+?) with (?P<r>.+)"),
    ("use", r"(?:use|toggle) (?P<r>.+)"),
    ("examine", r"examine (?P<r>.+)"),
]


def kind_of(name: str | None) -> str:
    """'apple 1' → 'apple'; object and receptacle names without their instance number."""
    return re.sub(r"\s*\d+$", "", (name or "").strip().lower())


@dataclass(frozen=True)
class Act:
    verb: str
    obj: str = ""  # object type (no number)
    recep: str = ""  # receptacle type
    valid: bool = True
    text: str = ""
    o_name: str = ""  # full names with instance numbers ("apple 1"), for state tracking
    r_name: str = ""


def parse_action(action: str, valid: bool = True) -> Act:
    """Parse an ALFWorld command into verb + object/receptacle types (both `put … in` and `move … to`)."""
    text = " ".join(action.strip().lower().split())
    ok = valid
    for verb, pat in _ACTION_PATTERNS:
        m = re.fullmatch(pat, text)
        if m:
            g = m.groupdict()
            o, r = (g.get("o") or "").strip(), (g.get("r") or "").strip()
            return Act(verb, kind_of(o), kind_of(r), ok, text, o, r)
    return Act(text.split(" ")[0] if text else "", valid=ok, text=text)


def parse_task(task: str) -> tuple[str | None, str | None]:
    """Target object type and destination type from task text ('put a hot apple in fridge' → apple, fridge)."""
    t = task.lower().split("your task is to:")[-1].strip().rstrip(".")
    for pat in _TASK_PATTERNS:
        m = re.search(pat, t)
        if m:
            return m["o"], m["d"]
    return None, None


@dataclass
class Episode:
    """One ALFWorld trajectory with the facts the analysis needs."""

    traj: Trajectory
    category: str
    target: str | None
    dest: str | None
    acts: list[Act]
    modes: dict[str, str] = field(default_factory=dict)  # failure mode → detail

    @property
    def tid(self) -> str:
        return self.traj.id

    def first(self, verb: str, obj: str | None = None) -> int | None:
        for i, a in enumerate(self.acts):
            if a.valid and a.verb == verb and (obj is None or a.obj == obj):
                return i
        return None

    def found_at(self) -> tuple[str | None, int]:
        """Receptacle type the target was taken from, and the distinct places visited before that."""
        i = self.first("take", self.target)
        upto = self.acts if i is None else self.acts[:i]
        visited = {a.r_name for a in upto if a.verb == "go" and a.valid}
        return (None if i is None else self.acts[i].recep), len(visited)


def episode_of(traj: Trajectory) -> Episode:
    cat = traj.task_category or category_from_task(traj.task_description) or "Pick"
    acts = [parse_action(s.action, ok) for s, ok in zip(traj.steps, action_validity(traj), strict=True)]
    target, dest = parse_task(traj.task_description)
    if target is None:  # fall back on what the agent handled
        target = next((a.obj for a in acts if a.verb == "take" and a.valid), None)
        dest = next((a.recep for a in reversed(acts) if a.verb == "put" and a.valid), None)
    if cat == "Look":
        dest = dest or "desklamp"
    return Episode(traj, cat, target, dest, acts)


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


def invalid_reasons(ep: Episode) -> list[str]:
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


# -- action plan with roles --------------------------------------------------------------------
def role_plan(ep: Episode) -> str:
    """The successful episode's plan with objects and places replaced by roles, repeats collapsed."""
    roles: list[str] = []
    took = False
    for a in ep.acts:
        if not a.valid:
            continue
        if a.verb == "take" and a.obj == ep.target:
            took, role = True, "take it"
        elif a.verb in ("heat", "cool", "clean"):
            role = f"{a.verb} it with the {a.recep}"
        elif a.verb == "use":
            role = f"turn on the {a.recep} while holding it"
        elif a.verb == "put":
            role = "put it in/on the target" if a.recep == ep.dest else f"put it in the {a.recep}"
        elif a.verb == "open" and a.recep == ep.dest:
            role = "open the target"
        elif (
            a.verb == "go"
            and took
            and a.recep in ("microwave", "fridge", "sinkbasin", "desklamp", "floorlamp")
        ):
            role = f"go to the {a.recep}"
        elif a.verb == "go" and took and a.recep == ep.dest:
            role = "go to the target"
        elif a.verb in ("go", "open", "examine") and not took:
            role = "find it (open closed receptacles)"
        else:
            continue
        if not roles or roles[-1] != role:
            roles.append(role)
        if a.verb == "put" and a.recep == ep.dest:
            took = False  # PickTwo: the search starts again for the second object
    return " → ".join(roles)


def _pct(k: int, n: int) -> str:
    return f"{k} of {n}"


def _names(counter: Counter, k: int = 3) -> str:
    return "/".join(str(name) for name, _ in counter.most_common(k) if name)


def _top(counter: Counter, k: int = 3) -> str:
    return ", ".join(f"{name} ({n})" for name, n in counter.most_common(k) if name)


def success_skills(eps: list[Episode]) -> list[Skill]:
    """Per-category plan, search and ordering skills from successful episodes, plus general ones."""
    by_cat: dict[str, list[Episode]] = defaultdict(list)
    for ep in eps:
        by_cat[ep.category].append(ep)
    out: list[Skill] = []
    for cat, group in by_cat.items():
        out += [_plan_skill(cat, group), _search_skill(cat, group)]
        extra = _category_step_skill(cat, group)
        if extra:
            out.append(extra)
    out += [s for s in (_open_first_skill(eps), _object_locations_skill(eps)) if s]
    return out


def _plan_skill(cat: str, group: list[Episode]) -> Skill:
    plans = Counter(role_plan(ep) for ep in group)
    plan, k = plans.most_common(1)[0]
    support = [ep.tid for ep in group if role_plan(ep) == plan]
    objs = Counter(ep.target for ep in group)
    dests = Counter(ep.dest for ep in group)
    example = group[0].traj.task_description.split("Your task is to:")[-1].strip()
    steps = sorted(len(ep.traj.steps) for ep in group)
    principle = (
        f"{_pct(k, len(group))} {cat} successes: {plan}. Objects: {_names(objs, 4)}; targets: "
        f"{_names(dests, 3)}; median {steps[len(steps) // 2]} steps."
    )
    return make_skill(f"{cat} task plan", principle, f"{cat} tasks such as '{example}'", cat, support, True)


def _search_skill(cat: str, group: list[Episode]) -> Skill:
    where: Counter = Counter()
    visits: list[int] = []
    per_obj: dict[str, Counter] = defaultdict(Counter)
    for ep in group:
        recep, n = ep.found_at()
        if recep:
            where[recep] += 1
            per_obj[ep.target or "?"][recep] += 1
            visits.append(n)
    fast = Counter(ep.found_at()[0] for ep in group if ep.found_at()[1] <= 1 and ep.found_at()[0])
    avg = sum(visits) / max(1, len(visits))
    objs = "; ".join(
        f"{o}: {_top(c, 2)}" for o, c in sorted(per_obj.items(), key=lambda kv: -sum(kv[1].values()))[:3]
    )
    principle = (
        f"{objs}. {cat} successes found the object after {avg:.1f} places on average (first try: "
        f"{_names(fast, 2) or 'none'}); check these first."
    )
    names = ", ".join(o for o, _ in sorted(per_obj.items(), key=lambda kv: -sum(kv[1].values()))[:3])
    return make_skill(
        f"Where to look for {names} ({cat})", principle, f"Searching for the object of a {cat} task",
        cat, [ep.tid for ep in group if ep.found_at()[0]], True,
    )  # fmt: skip


def _category_step_skill(cat: str, group: list[Episode]) -> Skill | None:
    """The category's key step: transform with the appliance, use the lamp, or place the second object."""
    if cat in TRANSFORMS:
        verb, done = TRANSFORMS[cat]
        tools = Counter(a.recep for ep in group for a in ep.acts if a.valid and a.verb == verb)
        ordered = [
            ep.tid for ep in group
            if (ep.first("take", ep.target) or 0) < (ep.first(verb) or -1) < (ep.first("put") or 10**6)
        ]  # fmt: skip
        if not tools:
            return None
        tool = tools.most_common(1)[0][0]
        principle = (
            f"{_pct(len(ordered), len(group))} {cat} successes used '{verb} <object> with {tool}' after "
            f"taking the object and before placing it; holding it at the {tool} is enough."
        )
        return make_skill(
            f"{verb.capitalize()} with the {tool} before placing", principle,
            f"Holding the object of a {cat} task, before going to the target receptacle", cat, ordered, True,
        )  # fmt: skip
    if cat == "Look":
        lamps = Counter(a.recep for ep in group for a in ep.acts if a.valid and a.verb == "use")
        held = [ep.tid for ep in group if (ep.first("take", ep.target) or 10**6) < (ep.first("use") or -1)]
        principle = (
            f"{_pct(len(held), len(group))} Look successes took the object first, then went to the "
            f"{_names(lamps, 1)} and used it; examining without the light does not finish the task."
        )
        return make_skill(
            "Take the object, then switch on the lamp", principle,
            "Look/examine tasks: 'look at X under the desklamp'", cat, held, True,
        )  # fmt: skip
    if cat == "PickTwo":
        same = [
            ep.tid for ep in group if len({a.recep for a in ep.acts if a.verb == "take" and a.valid}) == 1
        ]
        principle = (
            f"Successes placed the first object before fetching the second; in {_pct(len(same), len(group))} "
            f"both came from the same receptacle type, so look there again first."
        )
        return make_skill(
            "Place one, then fetch the second from the same spot", principle,
            "Tasks asking for two objects of one type", cat, [ep.tid for ep in group], True,
        )  # fmt: skip
    return None


def _open_first_skill(eps: list[Episode]) -> Skill | None:
    hits, types, cats = [], Counter(), Counter()
    for ep in eps:
        opened: set[str] = set()
        for a in ep.acts:
            if a.valid and a.verb == "open":
                opened.add(a.recep)
            elif a.valid and a.verb in ("take", "put") and a.recep in opened:
                hits.append(ep.tid)
                types[a.recep] += 1
                cats[ep.category] += 1
                break
    if not hits:
        return None
    principle = (
        f"{_pct(len(hits), len(eps))} successes ({len(cats)} task types) opened a closed {_names(types, 3)} "
        f"before taking from or putting into it; take/put at a closed receptacle does nothing."
    )
    return make_skill(
        "Open closed receptacles before using them", principle,
        "A receptacle described as closed holds or must receive the object", GENERAL, hits, True,
    )  # fmt: skip


def _object_locations_skill(eps: list[Episode]) -> Skill | None:
    per_obj: dict[str, Counter] = defaultdict(Counter)
    tids = []
    for ep in eps:
        recep, _ = ep.found_at()
        if recep and ep.target:
            per_obj[ep.target][recep] += 1
            tids.append(ep.tid)
    common = sorted(per_obj.items(), key=lambda kv: -sum(kv[1].values()))[:6]
    if not common:
        return None
    facts = "; ".join(f"{o}: {_top(c, 1)}" for o, c in common)
    principle = f"Where successes found objects (count): {facts}."
    return make_skill(
        "Typical object locations", principle, "Deciding where to search first for any object",
        GENERAL, tids, True,
    )  # fmt: skip


# -- failure modes ----------------------------------------------------------------------------
def detect_modes(ep: Episode, step_limit: int) -> dict[str, str]:
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


def tools_from(successes: list[Episode]) -> dict[str, str]:
    """Category → the key command successes used ('heat <object> with microwave'), learned from the data."""
    seen: dict[str, Counter] = defaultdict(Counter)
    for ep in successes:
        for a in ep.acts:
            if a.valid and a.verb in ("heat", "cool", "clean"):
                seen[ep.category][f"{a.verb} <object> with {a.recep}"] += 1
            elif a.valid and a.verb == "use":
                seen[ep.category][f"use {a.recep}"] += 1
    return {c: cnt.most_common(1)[0][0] for c, cnt in seen.items()}


def infer_step_limit(eps: list[Episode], default: int) -> int:
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
    eps: list[Episode], step_limit: int, tools: dict[str, str] | None = None
) -> tuple[list[Skill], list[CommonMistake]]:
    """One skill + one common mistake per failure mode; general when it occurs in ≥2 categories."""
    tools = {**DEFAULT_TOOLS, **(tools or {})}
    hits: dict[str, list[Episode]] = defaultdict(list)
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
    name, what, how = MODE_TEXT[mode]
    d = details.most_common(1)[0][0]
    what, how = what.replace("{t}", tool), _how(mode, how, tool, group, d)
    scope = "failed episodes" if cat == GENERAL else f"failed {cat} episodes"
    n = len(group) if cat == GENERAL else cats[cat]
    total = sum(totals.values()) if cat == GENERAL else totals[cat]
    principle = f"{n} of {total} {scope} {what.format(d=d)}. Instead, {how.format(d=d)}."
    when = MODE_WHEN[mode] + ("" if cat == GENERAL else f" ({cat} tasks)")
    label = name if cat == GENERAL else f"{name} ({cat})"
    return make_skill(label, principle, when, cat, [ep.tid for ep in group], False)


def _how(mode: str, how: str, tool: str, group: list[Episode], d: str) -> str:
    """The fix; for invalid actions, the fixes of the two most frequent reasons in this group."""
    how = how.replace("{t}", tool)
    if mode != "invalid":
        return how
    top = Counter(r for ep in group for r in invalid_reasons(ep)).most_common(2) or [(d, 0)]
    return how.replace("{fix}", "; ".join(INVALID_FIX.get(r, "check the command") for r, _ in top))


def _mode_mistake(
    mode: str, cat: str, group, cats: Counter, totals: Counter, details: Counter, tool: str
) -> CommonMistake:
    _, what, how = MODE_TEXT[mode]
    d = details.most_common(1)[0][0]
    what, how = what.replace("{t}", tool), _how(mode, how, tool, group, d)
    alt = ", ".join(f"'{x}' ({k})" for x, k in details.most_common(3))
    counts = _mode_counts(cats if cat == GENERAL else Counter({cat: cats[cat]}), totals)
    return make_mistake(
        description=f"The agent {what.format(d=d)}",
        why=f"{len(group)} failed episodes ({counts}); frequent: {alt}",
        how=how.format(d=d)[0].upper() + how.format(d=d)[1:] + ".",
        category=None if cat == GENERAL else cat,
        tids=[ep.tid for ep in group],
    )


# -- the teacher ---------------------------------------------------------------------------------
def is_webshop(traj: Trajectory) -> bool:
    env = str(traj.metadata.get("environment", "")).lower()
    return env == "webshop" or any(s.action.strip().startswith(("search[", "click[")) for s in traj.steps[:3])


class AnalyticTeacher:
    """Deterministic, offline teacher: `propose(trajectories)` → Proposals grounded in counts."""

    name = "analytic"

    def __init__(self, cfg: KrillConfig | None = None):
        self.cfg = cfg or KrillConfig()

    def propose(self, trajectories: Iterable[Trajectory], on_progress=None) -> Proposals:
        trajs = list(trajectories)
        web = [t for t in trajs if is_webshop(t)]
        alf = []
        for t in trajs:  # parsing is the per-trajectory work: the progress bar follows it
            if not is_webshop(t):
                alf.append(episode_of(t))
            if on_progress:
                on_progress(1)
        limit = self.cfg.env.alfworld.max_steps
        wins = [e for e in alf if e.traj.success]
        skills = success_skills(wins) if wins else []
        fskills, mistakes = failure_proposals([e for e in alf if not e.traj.success], limit, tools_from(wins))
        out = Proposals(skills=skills + fskills, mistakes=mistakes)
        if web:
            out.extend(webshop_proposals(web, self.cfg.env.webshop.max_steps))
        return out

    def propose_for_category(
        self,
        category: str,
        failures: list[Trajectory],
        existing_skills: list[Skill],
        max_new: int,
        shallow: list[Trajectory] | None = None,
    ) -> list[Skill]:
        """Up to `max_new` new skills for `category` from its failures (deep + shallow alike)."""
        return propose_for_category(
            category, [*failures, *(shallow or [])], existing_skills, max_new, self.cfg
        )


def propose_for_category(
    category: str,
    failures: list[Trajectory],
    existing_skills: list[Skill],
    max_new: int,
    cfg: KrillConfig | None = None,
) -> list[Skill]:
    """Evolution: ≤ max_new skills for one failing category from its real failures.

    Candidates: where the search went wrong in these failures (places over-visited, closed ones
    never opened, where the object was seen), then each failure mode, most frequent first; modes the
    category's skills already name come last. Near-duplicates are dropped later by `add_if_novel`.
    """
    cfg = cfg or KrillConfig()
    eps = [episode_of(t) for t in failures if not is_webshop(t)]
    for ep in eps:
        ep.category = category  # the caller decided the category; the mode text must say it
    skills, _ = failure_proposals(eps, cfg.env.alfworld.max_steps)
    if any(is_webshop(t) for t in failures):
        skills += webshop_proposals([t for t in failures if is_webshop(t)], cfg.env.webshop.max_steps).skills
    known = {s.name.lower() for s in existing_skills}
    skills.sort(key=lambda s: (s.name.lower() in known, -len(s.provenance)))
    gap = search_gap_skill(category, eps)
    ranked = ([gap] if gap else []) + skills
    return [
        s.model_copy(update={"category": category, "source": "evolution"}) for s in ranked[: max(0, max_new)]
    ]


_SEEN = re.compile(r"(?:on the|in the|in it|in) ?([a-z]+ \d+)?[^.]*?you see ([^.]*)", re.I)


def search_gap_skill(category: str, eps: list[Episode]) -> Skill | None:
    """Where these failures searched, what closed places they never opened, and where the object showed up."""
    visits, opened, closed, seen_at = Counter(), set(), set(), Counter()
    for ep in eps:
        steps = ep.traj.steps
        for i, a in enumerate(ep.acts):
            if not a.valid:
                continue
            if a.verb == "go":
                visits[a.recep] += 1
            if a.verb == "open":
                opened.add(a.recep)
            result = steps[i + 1].observation.lower() if i + 1 < len(steps) else ""
            if a.verb in ("go", "open") and "is closed" in result:
                closed.add(a.recep)
            if a.verb in ("go", "open") and ep.target and re.search(rf"\b{re.escape(ep.target)} \d", result):
                seen_at[a.recep] += 1
    if not visits:
        return None
    unopened = sorted(closed - opened)
    parts = [f"{len(eps)} failed {category} episodes went mostly to {_top(visits, 3)}"]
    if unopened:
        parts.append(f"but never opened the closed {'/'.join(unopened[:4])}")
    if seen_at:
        parts.append(f"; the object was visible at {_top(seen_at, 3)} and still not taken")
    fix = (
        "open closed receptacles and take the object where it is seen, instead of revisiting the same places"
    )
    principle = " ".join(parts).replace(" ;", ";") + f". Instead, {fix}."
    name = f"{category}: search the places failures skipped" + (
        f" ({'/'.join(unopened[:2])})" if unopened else ""
    )
    return make_skill(name, principle, f"Searching for the object of a {category} task", category,
                      [ep.tid for ep in eps], False, source="evolution")  # fmt: skip


def categories_of(trajs: Iterable[Trajectory]) -> dict[str, str]:
    """Trajectory id → category (explicit, else inferred from the task text)."""
    out = {}
    for t in trajs:
        cat = t.task_category or (None if is_webshop(t) else category_from_task(t.task_description))
        out[t.id] = cat or ("other" if is_webshop(t) else ALFWORLD_CATEGORIES[0])
    return out


# -- WebShop (search[...] / click[...]): simpler, same idea --------------------------------------
_STOP = set("i a an the and or of for with to in on is that it my me need want looking am be under less than "
            "price dollars lower not more please find buy some which".split())  # fmt: skip
_NAV = ("buy now", "next >", "< prev", "back to search", "description", "features", "reviews", "search")


def _ws_words(text: str) -> set[str]:
    return {
        w
        for w in re.findall(r"[a-z0-9\-]+", text.lower())
        if w not in _STOP and not w.replace(".", "").isdigit()
    }


def _ws_facts(t: Trajectory) -> dict:
    acts = [s.action.strip().lower() for s in t.steps]
    queries = [a[7:-1] for a in acts if a.startswith("search[")]
    clicks = [a[6:-1] for a in acts if a.startswith("click[")]
    item_i = next((i for i, c in enumerate(clicks) if re.fullmatch(r"b0[0-9a-z]{8}", c)), None)
    after_item = clicks[item_i + 1 :] if item_i is not None else []
    options = [c for c in after_item if c not in _NAV and not re.fullmatch(r"b0[0-9a-z]{8}", c)]
    want = _ws_words(t.task_description.split("Instruction:")[-1])
    q = _ws_words(queries[0]) if queries else set()
    return {
        "queries": queries, "bought": "buy now" in clicks, "options": options,
        "overlap": len(q & want) / max(1, len(want)), "qlen": len(queries[0].split()) if queries else 0,
        "pages": sum(1 for c in clicks if c == "next >"),
        "price_limit": bool(re.search(r"(?:lower|less) than \$?\d", t.task_description.lower())),
        "invalid": action_validity(t).count(False),
    }  # fmt: skip


def webshop_proposals(trajs: list[Trajectory], step_limit: int) -> Proposals:
    """Query formulation, option selection before Buy Now and price checks (successes); failure modes."""
    cats = categories_of(trajs)
    facts = {t.id: _ws_facts(t) for t in trajs}
    wins = [t for t in trajs if t.success]
    fails = [t for t in trajs if not t.success]
    out = Proposals()

    def cat_for(ids: list[str]) -> str:
        found = {cats[i] for i in ids}
        return GENERAL if len(found) >= 2 else (found.pop() if found else "other")

    if wins:
        f = [facts[t.id] for t in wins]
        ids = [t.id for t in wins]
        avg_len = sum(x["qlen"] for x in f) / len(f)
        avg_ov = 100 * sum(x["overlap"] for x in f) / len(f)
        ex = next((x["queries"][0] for x in f if x["queries"]), "")
        out.skills.append(make_skill(
            "Search with the product type and key attributes",
            f"The first query of {len(wins)} successful purchases had {avg_len:.1f} words covering {avg_ov:.0f}% of "
            f"the instruction's key words (e.g. 'search[{ex}]'); {sum(len(x['queries']) == 1 for x in f)} needed no "
            f"second search.", "Starting a WebShop task: writing the search query", cat_for(ids), ids, True))  # fmt: skip
        opt = [t.id for t in wins if facts[t.id]["options"]]
        if opt:
            top = Counter(o for t in wins for o in facts[t.id]["options"]).most_common(4)
            out.skills.append(make_skill(
                "Select every requested option before Buy Now",
                f"{len(opt)} of {len(wins)} successful purchases clicked options on the item page before "
                f"'Buy Now' (e.g. {', '.join(o for o, _ in top)}); each option named in the instruction counts "
                f"toward the reward.", "On an item page, before clicking Buy Now", cat_for(opt), opt, True))  # fmt: skip
        priced = [t.id for t in wins if facts[t.id]["price_limit"]]
        if priced:
            out.skills.append(make_skill(
                "Check the price against the limit",
                f"{len(priced)} successful purchases had a price limit in the instruction and bought an item "
                f"listed below it; compare the listed price with the limit before opening an item.",
                "The instruction says 'price lower than N dollars'", cat_for(priced), priced, True))  # fmt: skip
    modes = {
        "never bought (step limit)": [t.id for t in fails if not facts[t.id]["bought"]],
        "bought without choosing options": [t.id for t in fails if facts[t.id]["bought"] and not facts[t.id]["options"]],
        "searched three or more times": [t.id for t in fails if len(facts[t.id]["queries"]) >= 3],
        "invalid clicks": [t.id for t in fails if facts[t.id]["invalid"] >= 2],
    }  # fmt: skip
    how = {
        "never bought (step limit)": f"with {step_limit} steps, open the best matching result at once and buy after setting options",
        "bought without choosing options": "click the size/color/style options the instruction names before Buy Now",
        "searched three or more times": "write one query with product type + key attributes and pick from its results",
        "invalid clicks": "click only elements shown on the current page, spelled exactly as shown",
    }  # fmt: skip
    for mode, ids in modes.items():
        if not ids:
            continue
        cat = cat_for(ids)
        what = f"{len(ids)} of {len(fails)} failed WebShop episodes {mode}"
        out.skills.append(make_skill(f"Avoid: {mode}", f"{what}. To avoid it, {how[mode]}.",
                                     f"WebShop episodes at risk: {mode}", cat, ids, False))  # fmt: skip
        out.mistakes.append(make_mistake(what, f"seen in {len(ids)} failures", how[mode].capitalize() + ".",
                                         None if cat == GENERAL else cat, ids))  # fmt: skip
    return out
