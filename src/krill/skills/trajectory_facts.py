"""What a recorded trajectory says: its environment, its category, and (ALFWorld) its parsed acts.

`parse_trajectory` reads an ALFWorld trajectory into a `ParsedTrajectory` (category, target object,
destination, and each step's command parsed into an `Act`); the analytic teacher and the
failure-mode detector reason over these. `is_webshop` and `categories_of` say which environment
and category any trajectory belongs to.

These parse *recorded* commands for analysis; the agent's own text → action parsing is
`krill.agent.parsing`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from krill.categories import ALFWORLD_CATEGORIES, category_from_task
from krill.schema import Trajectory
from krill.skills.trajectory_text import action_validity

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
    """One recorded ALFWorld command, parsed: verb, object and receptacle types, validity."""

    verb: str
    obj: str = ""  # object type (no number)
    recep: str = ""  # receptacle type
    valid: bool = True
    text: str = ""
    o_name: str = ""  # full names with instance numbers ("apple 1"), for state tracking
    r_name: str = ""


def parse_act(action: str, valid: bool = True) -> Act:
    """Parse a recorded ALFWorld command into verb + object/receptacle types (both `put … in` and `move … to`)."""
    text = " ".join(action.strip().lower().split())
    for verb, pat in _ACTION_PATTERNS:
        m = re.fullmatch(pat, text)
        if m:
            g = m.groupdict()
            o, r = (g.get("o") or "").strip(), (g.get("r") or "").strip()
            return Act(verb, kind_of(o), kind_of(r), valid, text, o, r)
    return Act(text.split(" ")[0] if text else "", valid=valid, text=text)


def task_goal(task: str) -> tuple[str | None, str | None]:
    """Target object type and destination type from task text ('put a hot apple in fridge' → apple, fridge)."""
    t = task.lower().split("your task is to:")[-1].strip().rstrip(".")
    for pat in _TASK_PATTERNS:
        m = re.search(pat, t)
        if m:
            return m["o"], m["d"]
    return None, None


@dataclass
class ParsedTrajectory:
    """One recorded ALFWorld trajectory with the facts the analysis needs."""

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


def parse_trajectory(traj: Trajectory) -> ParsedTrajectory:
    """The trajectory's category, target, destination and parsed acts (target from the acts if the task text has none)."""
    cat = traj.task_category or category_from_task(traj.task_description) or "Pick"
    acts = [parse_act(s.action, ok) for s, ok in zip(traj.steps, action_validity(traj), strict=True)]
    target, dest = task_goal(traj.task_description)
    if target is None:  # fall back on what the agent handled
        target = next((a.obj for a in acts if a.verb == "take" and a.valid), None)
        dest = next((a.recep for a in reversed(acts) if a.verb == "put" and a.valid), None)
    if cat == "Look":
        dest = dest or "desklamp"
    return ParsedTrajectory(traj, cat, target, dest, acts)


def is_webshop(traj: Trajectory) -> bool:
    """A WebShop trajectory: recorded as such, or its first actions are search[...] / click[...]."""
    env = str(traj.metadata.get("environment", "")).lower()
    return env == "webshop" or any(s.action.strip().startswith(("search[", "click[")) for s in traj.steps[:3])


def categories_of(trajs: Iterable[Trajectory]) -> dict[str, str]:
    """Trajectory id → category (explicit, else inferred from the task text)."""
    out = {}
    for t in trajs:
        cat = t.task_category or (None if is_webshop(t) else category_from_task(t.task_description))
        out[t.id] = cat or ("other" if is_webshop(t) else ALFWORLD_CATEGORIES[0])
    return out
