"""The data model: Skill, SkillBank, Step, Trajectory (pydantic v2).

Field names follow the Rust krill serde format so its files read and write without loss; krill's own
extra fields (provenance, source, usage counts) are optional and unknown fields are preserved.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from krill.categories import normalize_category
from krill.errors import KrillError

GENERAL = "General"
M = TypeVar("M", bound=BaseModel)


def new_id() -> str:
    return str(uuid.uuid4())


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Provenance(BaseModel):
    """Where a skill or mistake came from: a source trajectory and whether it succeeded."""

    model_config = ConfigDict(extra="allow")
    trajectory_id: str
    success: bool | None = None


class Skill(BaseModel):
    """One reusable piece of know-how. `category` is "General" or a task category name.

    On disk the category uses the Rust encoding: `"General"` or `{"TaskSpecific": "Heat"}`.
    """

    model_config = ConfigDict(extra="allow")
    id: str = Field(default_factory=new_id)
    # Length caps: a bank is read into every prompt, so a multi-megabyte field is a corrupt file.
    name: str = Field(min_length=1, max_length=300)
    principle: str = Field(min_length=1, max_length=20_000)
    when_to_apply: str = Field(min_length=1, max_length=20_000)
    category: str = GENERAL
    embedding: list[float] | None = None
    provenance: list[Provenance] = Field(default_factory=list)
    source: str | None = None  # "distill", "evolution", "official", "manual", ...

    @field_validator("category", mode="before")
    @classmethod
    def _decode_category(cls, v: Any) -> str:
        if isinstance(v, dict):
            if set(v) != {"TaskSpecific"}:
                raise ValueError('expected "General" or {"TaskSpecific": <category>}')
            return normalize_category(v["TaskSpecific"])
        if v == GENERAL or v is None:
            return GENERAL
        return normalize_category(v)

    @field_validator("embedding")
    @classmethod
    def _finite(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            for i, x in enumerate(v):
                if not math.isfinite(x):
                    raise ValueError(f"embedding[{i}] is {x} (must be finite)")
        return v

    @field_serializer("category")
    def _encode_category(self, v: str) -> Any:
        return GENERAL if v == GENERAL else {"TaskSpecific": v}

    @property
    def is_general(self) -> bool:
        return self.category == GENERAL

    @property
    def short_id(self) -> str:
        return self.id.replace("-", "")[:8]

    @property
    def bare_name(self) -> str:
        """The name without the category it already spells ("Cool: x", "x (Cool)" → "x"), for lists
        that show the category beside it (teachers often put it in the name)."""
        name = self.name.strip()
        for prefix in (f"{self.category}:", f"{self.category} -"):
            if name.startswith(prefix) and name[len(prefix) :].strip():
                return name[len(prefix) :].strip()
        suffix = f"({self.category})"
        if name.endswith(suffix) and name[: -len(suffix)].strip():
            return name[: -len(suffix)].strip()
        return name

    @property
    def label(self) -> str:
        """`name (category)`, the category once."""
        return f"{self.bare_name} ({self.category})"

    def text_for_embedding(self) -> str:
        return f"{self.name}. {self.principle} When: {self.when_to_apply}"


class CommonMistake(BaseModel):
    """A failure mode and how to avoid it (official SkillRL `common_mistakes`)."""

    model_config = ConfigDict(extra="allow")
    mistake_id: str = Field(default_factory=new_id)
    description: str = Field(min_length=1)
    why_it_happens: str = ""
    how_to_avoid: str = ""
    category: str | None = None  # None: applies to every category
    provenance: list[Provenance] = Field(default_factory=list)

    @field_validator("category", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> str | None:
        return None if v in (None, GENERAL) else normalize_category(v)


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    skill_id: str
    added_at: str = Field(default_factory=now_rfc3339)
    evolution_cycle: int = 0


class SkillBank(BaseModel):
    """General skills + task-specific skills per category + common mistakes + evolution history."""

    model_config = ConfigDict(extra="allow")
    general_skills: list[Skill] = Field(default_factory=list)
    task_specific_skills: dict[str, list[Skill]] = Field(default_factory=dict)
    common_mistakes: list[CommonMistake] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    current_cycle: int = 0

    @field_validator("task_specific_skills", mode="before")
    @classmethod
    def _norm_keys(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[str, list] = {}
        for key, skills in v.items():
            out.setdefault(normalize_category(key, where=f"task_specific_skills.{key}"), []).extend(
                skills if isinstance(skills, list) else [skills]
            )
        return out

    # -- queries -------------------------------------------------------------------------------
    def all_skills(self) -> list[Skill]:
        out = list(self.general_skills)
        for skills in self.task_specific_skills.values():
            out.extend(skills)
        return out

    def __len__(self) -> int:
        return len(self.general_skills) + sum(len(s) for s in self.task_specific_skills.values())

    def categories(self) -> list[str]:
        return list(self.task_specific_skills)

    def skills_for(self, category: str) -> list[Skill]:
        return list(self.task_specific_skills.get(category, []))

    def mistakes_for(self, category: str | None) -> list[CommonMistake]:
        return [m for m in self.common_mistakes if m.category is None or m.category == category]

    def get(self, skill_id: str) -> Skill | None:
        for s in self.all_skills():
            if s.id == skill_id or s.short_id == skill_id.replace("-", "")[:8]:
                return s
        return None

    def embedding_dim(self) -> int | None:
        dims = {len(s.embedding) for s in self.all_skills() if s.embedding is not None}
        return dims.pop() if len(dims) == 1 else None

    # -- mutation ------------------------------------------------------------------------------
    def add(self, skill: Skill, *, cycle: int | None = None) -> Skill:
        """File a skill under its tier/category and record a history entry."""
        if skill.is_general:
            self.general_skills.append(skill)
        else:
            self.task_specific_skills.setdefault(skill.category, []).append(skill)
        self.history.append(
            HistoryEntry(skill_id=skill.id, evolution_cycle=self.current_cycle if cycle is None else cycle)
        )
        return skill

    def remove(self, skill_id: str) -> None:
        self.general_skills = [s for s in self.general_skills if s.id != skill_id]
        for cat in list(self.task_specific_skills):
            self.task_specific_skills[cat] = [s for s in self.task_specific_skills[cat] if s.id != skill_id]

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)


class Step(BaseModel):
    model_config = ConfigDict(extra="allow")
    observation: str = Field(max_length=1_000_000)  # real pages are < 10k chars; 1M is a corrupt file
    action: str = Field(max_length=100_000)
    reward: float = 0.0
    step_index: int = 0
    action_log_prob: float | None = None  # the Rust krill format's optional fields; krill records per-token
    ref_log_prob: float | None = None  # log-probs in `response_logprobs` (an extra) instead
    valid: bool | None = None  # krill: was the action parseable and admissible?
    think: str | None = None  # krill: the model's reasoning, when it gave one


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(default_factory=new_id)
    task_description: str
    task_category: str | None = None
    steps: list[Step] = Field(default_factory=list)
    total_reward: float = 0.0
    success: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("task_category", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, dict) and set(v) == {"TaskSpecific"}:  # Rust encoding, just in case
            v = v["TaskSpecific"]
        return normalize_category(v)

    @field_validator("total_reward")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"total_reward is {v} (must be finite)")
        return v

    @property
    def num_invalid(self) -> int:
        return sum(1 for s in self.steps if s.valid is False)


def format_loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    """('general_skills', 3, 'principle') → 'general_skills[3].principle'."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def validate_as(cls: type[M], data: Any, *, path: Any = None, prefix: str = "") -> M:
    """`cls.model_validate(data)` with a one-line KrillError naming the field path on failure."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = format_loc(tuple(err["loc"]), prefix)
        msg = err["msg"].removeprefix("Value error, ")
        ctx = err.get("ctx", {}).get("error")
        if isinstance(ctx, KrillError):
            msg = str(ctx).split(": ", 1)[-1] if ctx.where else str(ctx)
        raise KrillError(msg, path=path, where=loc) from None
