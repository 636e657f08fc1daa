"""The offline teacher: skills computed from the trajectories themselves, no model needed.

Successes give each category's action plan (objects and places replaced by roles: find → take →
heat with microwave → put in target), where target objects were found and how fast, and ordering
facts (open closed receptacles first). Failures give failure modes (invalid actions, loops, step
limit, transformation skipped, wrong object or receptacle, object never found). Every statement
cites its counts and every skill carries the ids of the trajectories it was computed from, so two
different sets of trajectories give two different banks.

Parsing lives in `trajectory_facts`, failure modes in `failure_modes`, WebShop in
`analytic_webshop`; this module holds the success skills and the teacher, `AnalyticTeacher`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from krill.config import KrillConfig
from krill.schema import GENERAL, Skill, Trajectory
from krill.skills.teachers.analytic_webshop import webshop_proposals
from krill.skills.teachers.failure_modes import failure_proposals, tools_from
from krill.skills.teachers.proposals import Proposals, make_skill
from krill.skills.trajectory_facts import TRANSFORMS, ParsedTrajectory, is_webshop, parse_trajectory


# -- action plan with roles --------------------------------------------------------------------
def role_plan(ep: ParsedTrajectory) -> str:
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


def success_skills(eps: list[ParsedTrajectory]) -> list[Skill]:
    """Per-category plan, search and ordering skills from successful episodes, plus general ones."""
    by_cat: dict[str, list[ParsedTrajectory]] = defaultdict(list)
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


def _plan_skill(cat: str, group: list[ParsedTrajectory]) -> Skill:
    plans = Counter(role_plan(ep) for ep in group)
    plan, k = plans.most_common(1)[0]
    support = [ep.tid for ep in group if role_plan(ep) == plan]
    objs = Counter(ep.target for ep in group)
    dests = Counter(ep.dest for ep in group)
    task = group[0].traj.task_description.split("Your task is to:")[-1].strip()
    # quote only the task's first sentence: trajectory text is data and must not ride into every prompt
    example = re.split(r"(?<=[.!?])\s", task, maxsplit=1)[0][:120]
    steps = sorted(len(ep.traj.steps) for ep in group)
    principle = (
        f"{_pct(k, len(group))} {cat} successes: {plan}. Objects: {_names(objs, 4)}; targets: "
        f"{_names(dests, 3)}; median {steps[len(steps) // 2]} steps."
    )
    return make_skill(f"{cat} task plan", principle, f"{cat} tasks such as '{example}'", cat, support, True)


def _where_found(eps: list[ParsedTrajectory], unknown: str | None = None) -> list[tuple[str, Counter]]:
    """Object type → receptacle types it was taken from (counts), most often found first."""
    per_obj: dict[str, Counter] = defaultdict(Counter)
    for ep in eps:
        recep, _ = ep.found_at()
        obj = ep.target or unknown
        if recep and obj:
            per_obj[obj][recep] += 1
    return sorted(per_obj.items(), key=lambda kv: -sum(kv[1].values()))


def _search_skill(cat: str, group: list[ParsedTrajectory]) -> Skill:
    visits = [n for recep, n in (ep.found_at() for ep in group) if recep]
    per_obj = _where_found(group, unknown="?")[:3]
    fast = Counter(ep.found_at()[0] for ep in group if ep.found_at()[1] <= 1 and ep.found_at()[0])
    avg = sum(visits) / max(1, len(visits))
    objs = "; ".join(f"{o}: {_top(c, 2)}" for o, c in per_obj)
    principle = (
        f"{objs}. {cat} successes found the object after {avg:.1f} places on average (first try: "
        f"{_names(fast, 2) or 'none'}); check these first."
    )
    names = ", ".join(o for o, _ in per_obj)
    return make_skill(
        f"Where to look for {names} ({cat})", principle, f"Searching for the object of a {cat} task",
        cat, [ep.tid for ep in group if ep.found_at()[0]], True,
    )  # fmt: skip


def _category_step_skill(cat: str, group: list[ParsedTrajectory]) -> Skill | None:
    """The category's key step: transform with the appliance, use the lamp, or place the second object."""
    if cat in TRANSFORMS:
        return _transform_skill(cat, group)
    step = {"Look": _lamp_skill, "PickTwo": _second_object_skill}.get(cat)
    return step(group) if step else None


def _transform_skill(cat: str, group: list[ParsedTrajectory]) -> Skill | None:
    verb, _ = TRANSFORMS[cat]
    tools = Counter(a.recep for ep in group for a in ep.acts if a.valid and a.verb == verb)
    if not tools:
        return None
    ordered = [
        ep.tid for ep in group
        if (ep.first("take", ep.target) or 0) < (ep.first(verb) or -1) < (ep.first("put") or 10**6)
    ]  # fmt: skip
    tool = tools.most_common(1)[0][0]
    principle = (
        f"{_pct(len(ordered), len(group))} {cat} successes used '{verb} <object> with {tool}' after "
        f"taking the object and before placing it; holding it at the {tool} is enough."
    )
    when = f"Holding the object of a {cat} task, before going to the target receptacle"
    return make_skill(
        f"{verb.capitalize()} with the {tool} before placing", principle, when, cat, ordered, True
    )


def _lamp_skill(group: list[ParsedTrajectory]) -> Skill:
    lamps = Counter(a.recep for ep in group for a in ep.acts if a.valid and a.verb == "use")
    held = [ep.tid for ep in group if (ep.first("take", ep.target) or 10**6) < (ep.first("use") or -1)]
    principle = (
        f"{_pct(len(held), len(group))} Look successes took the object first, then went to the "
        f"{_names(lamps, 1)} and used it; examining without the light does not finish the task."
    )
    when = "Look/examine tasks: 'look at X under the desklamp'"
    return make_skill("Take the object, then switch on the lamp", principle, when, "Look", held, True)


def _second_object_skill(group: list[ParsedTrajectory]) -> Skill:
    same = [ep.tid for ep in group if len({a.recep for a in ep.acts if a.verb == "take" and a.valid}) == 1]
    principle = (
        f"Successes placed the first object before fetching the second; in {_pct(len(same), len(group))} "
        f"both came from the same receptacle type, so look there again first."
    )
    when = "Tasks asking for two objects of one type"
    name = "Place one, then fetch the second from the same spot"
    return make_skill(name, principle, when, "PickTwo", [ep.tid for ep in group], True)


def _open_first_skill(eps: list[ParsedTrajectory]) -> Skill | None:
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


def _object_locations_skill(eps: list[ParsedTrajectory]) -> Skill | None:
    common = _where_found(eps)[:6]
    if not common:
        return None
    tids = [ep.tid for ep in eps if ep.target and ep.found_at()[0]]
    facts = "; ".join(f"{o}: {_top(c, 1)}" for o, c in common)
    principle = f"Where successes found objects (count): {facts}."
    return make_skill(
        "Typical object locations", principle, "Deciding where to search first for any object",
        GENERAL, tids, True,
    )  # fmt: skip


# -- the teacher ---------------------------------------------------------------------------------
class AnalyticTeacher:
    """Deterministic, offline `Teacher`: proposals grounded in counts over the trajectories."""

    name = "analytic"

    def __init__(self, cfg: KrillConfig | None = None):
        self.cfg = cfg or KrillConfig()

    def propose(self, trajectories: Iterable[Trajectory], on_progress=None) -> Proposals:
        trajs = list(trajectories)
        web = [t for t in trajs if is_webshop(t)]
        alf = []
        for t in trajs:  # parsing is the per-trajectory work: the progress bar follows it
            if not is_webshop(t):
                alf.append(parse_trajectory(t))
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

    def propose_for_category(self, category, failures, existing_skills, max_new, shallow=None) -> list[Skill]:
        """Evolution: ≤ max_new skills for one failing category from its real failures (deep + shallow alike).

        Candidates: where the search went wrong in these failures (places over-visited, closed ones
        never opened, where the object was seen), then each failure mode, most frequent first; modes
        the category's skills already name come last. Near-duplicates are dropped later by `add_if_novel`.
        """
        failures = [*failures, *(shallow or [])]
        eps = [parse_trajectory(t) for t in failures if not is_webshop(t)]
        for ep in eps:
            ep.category = category  # the caller decided the category; the mode text must say it
        skills, _ = failure_proposals(eps, self.cfg.env.alfworld.max_steps)
        web = [t for t in failures if is_webshop(t)]
        if web:
            skills += webshop_proposals(web, self.cfg.env.webshop.max_steps).skills
        known = {s.name.lower() for s in existing_skills}
        skills.sort(key=lambda s: (s.name.lower() in known, -len(s.provenance)))
        gap = search_gap_skill(category, eps)
        ranked = ([gap] if gap else []) + skills
        evolved = {"category": category, "source": "evolution"}
        return [s.model_copy(update=evolved) for s in ranked[: max(0, max_new)]]


def search_gap_skill(category: str, eps: list[ParsedTrajectory]) -> Skill | None:
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
