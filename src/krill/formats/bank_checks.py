"""Bank invariants the schema alone does not express, shared by every bank reader (krill and official)."""

from __future__ import annotations

from typing import Any

from krill.errors import KrillError
from krill.schema import SkillBank


def check_bank(bank: SkillBank, *, path: Any = None) -> None:
    """Invariants the model alone does not express: unique ids, one embedding dimension."""
    seen: dict[str, str] = {}
    dims: dict[int, str] = {}
    for where, skill in iter_located(bank):
        if skill.id in seen:
            raise KrillError(
                f"duplicate skill id {skill.id!r} (also at {seen[skill.id]})", path=path, where=where
            )
        seen[skill.id] = where
        if skill.embedding is not None:
            dims.setdefault(len(skill.embedding), where)
            if len(dims) > 1:
                (d0, w0), (d1, w1) = list(dims.items())[:2]
                raise KrillError(
                    f"embeddings of mixed dimension: {w0} has {d0}, {w1} has {d1} "
                    "(re-embed the bank with one model)",
                    path=path,
                    where=f"{w1}.embedding",
                )


def iter_located(bank: SkillBank):
    """(field path, skill) pairs in file order: general first, then each category."""
    for i, s in enumerate(bank.general_skills):
        yield f"general_skills[{i}]", s
    for cat, skills in bank.task_specific_skills.items():
        for i, s in enumerate(skills):
            yield f"task_specific_skills.{cat}[{i}]", s
