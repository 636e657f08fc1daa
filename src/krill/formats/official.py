"""The official SkillRL skill JSON (aiming-lab/SkillRL), read and written.

Official skills have `skill_id`, `title`, `principle`, `when_to_apply` and official category keys
(pick_and_place, heat, …). On import a skill without a krill uuid gets a *stable* one, uuid5 of its
`skill_id`, and keeps `official_id`. On export, everything the official shape has no field for (krill
ids, embeddings, provenance, history, cycle) goes under `metadata.krill`, so krill → official → krill
restores the bank exactly while official readers see only their own fields.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from krill.categories import normalize_category, official_name
from krill.errors import KrillError
from krill.formats.bank_checks import check_bank
from krill.schema import GENERAL, CommonMistake, HistoryEntry, Skill, SkillBank, validate_as

# Fixed namespace: the same official skill_id maps to the same krill uuid on every machine.
OFFICIAL_NAMESPACE = uuid.UUID("6f1c3a52-9d0e-4b8e-9a57-5b0c2e4a7d11")
_IN_OFFICIAL = ("name", "principle", "when_to_apply", "category")


class OfficialSkill(BaseModel):
    model_config = ConfigDict(extra="allow")
    skill_id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    principle: str = Field(min_length=1)
    when_to_apply: str = Field(min_length=1)


def stable_id(skill_id: str) -> str:
    """The krill uuid of an official skill: uuid5 of its skill_id (uuids pass through unchanged).

    >>> stable_id("heat_001") == stable_id("heat_001")
    True
    """
    try:
        return str(uuid.UUID(skill_id))
    except ValueError:
        return str(uuid.uuid5(OFFICIAL_NAMESPACE, f"skillrl:{skill_id}"))


# -- official → krill ------------------------------------------------------------------------------
def official_to_bank(data: dict[str, Any], *, path: Any = None) -> SkillBank:
    """Build a SkillBank from an official SkillRL dict; errors name the field path."""
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    stored = meta.get("krill") if isinstance(meta.get("krill"), dict) else {}
    stored_skills = stored.get("skills") or {}
    bank = SkillBank()
    for i, raw in enumerate(_as_list(data.get("general_skills", []), "general_skills", path)):
        bank.general_skills.append(_skill(raw, GENERAL, f"general_skills[{i}]", stored_skills, path))
    tss = data.get("task_specific_skills", {})
    if not isinstance(tss, dict):
        raise KrillError("expected an object of category → skills", path=path, where="task_specific_skills")
    for key, raws in tss.items():
        where = f"task_specific_skills.{key}"
        cat = normalize_category(key, path=path, where=where)
        for j, raw in enumerate(_as_list(raws, where, path)):
            bank.task_specific_skills.setdefault(cat, []).append(
                _skill(raw, cat, f"{where}[{j}]", stored_skills, path)
            )
    bank.common_mistakes = _mistakes(data.get("common_mistakes", []), path)
    if stored:
        bank.history = [validate_as(HistoryEntry, h, path=path) for h in stored.get("history", [])]
        bank.current_cycle = int(stored.get("current_cycle", 0))
        for k, v in (stored.get("bank_extra") or {}).items():
            setattr(bank, k, v)
    else:
        bank.history = [HistoryEntry(skill_id=s.id, added_at=_added_at(meta)) for s in bank.all_skills()]
        if meta:
            bank.metadata = meta  # kept (as an extra field) so nothing the file said is dropped
    check_bank(bank, path=path)
    return bank


def _skill(raw: Any, category: str, where: str, stored: dict[str, Any], path: Any) -> Skill:
    off = validate_as(OfficialSkill, raw, path=path, prefix=where)
    fields: dict[str, Any] = {
        "name": off.title,
        "principle": off.principle,
        "when_to_apply": off.when_to_apply,
        "category": category,
    }
    kept = stored.get(off.skill_id)
    if isinstance(kept, dict):  # written by krill: restore exactly what the official shape lacks
        fields.update({k: v for k, v in kept.items() if k not in _IN_OFFICIAL})
    else:
        fields.update(id=stable_id(off.skill_id), official_id=off.skill_id, source="official")
        fields.update(off.model_extra or {})
    return validate_as(Skill, fields, path=path, prefix=where)


def _mistakes(raw: Any, path: Any) -> list[CommonMistake]:
    out: list[CommonMistake] = []
    if isinstance(raw, dict):  # some banks group mistakes by category
        for key, items in raw.items():
            cat = (
                None
                if key in ("general", GENERAL)
                else normalize_category(key, path=path, where=f"common_mistakes.{key}")
            )
            for j, m in enumerate(_as_list(items, f"common_mistakes.{key}", path)):
                m = {**m, "category": m.get("category", cat)} if isinstance(m, dict) else m
                out.append(validate_as(CommonMistake, m, path=path, prefix=f"common_mistakes.{key}[{j}]"))
        return out
    for j, m in enumerate(_as_list(raw, "common_mistakes", path)):
        if isinstance(m, dict) and "description" not in m and "mistake" in m:
            m = {**m, "description": m["mistake"]}
        out.append(validate_as(CommonMistake, m, path=path, prefix=f"common_mistakes[{j}]"))
    return out


def _as_list(v: Any, where: str, path: Any) -> list:
    if not isinstance(v, list):
        raise KrillError(f"expected a list, got {type(v).__name__}", path=path, where=where)
    return v


def _added_at(meta: dict[str, Any]) -> str:
    from krill.schema import now_rfc3339

    ts = meta.get("created_at") or meta.get("generated_at")
    return ts if isinstance(ts, str) and ts else now_rfc3339()


# -- krill → official ------------------------------------------------------------------------------
def bank_to_official(bank: SkillBank) -> dict[str, Any]:
    """The official SkillRL shape; krill-only data goes to `metadata.krill` for a lossless return."""
    used = {s.model_extra.get("official_id") for s in bank.all_skills() if s.model_extra}
    counters: dict[str, int] = {}
    stored: dict[str, Any] = {}

    def entry(s: Skill) -> dict[str, Any]:
        sid = (s.model_extra or {}).get("official_id") or _next_id(s.category, counters, used)
        keep = s.model_dump(mode="json")
        stored[sid] = {k: v for k, v in keep.items() if k not in _IN_OFFICIAL and v not in (None, [], {})}
        return {"skill_id": sid, "title": s.name, "principle": s.principle, "when_to_apply": s.when_to_apply}

    out: dict[str, Any] = {
        "general_skills": [entry(s) for s in bank.general_skills],
        "task_specific_skills": {
            official_name(c): [entry(s) for s in ss] for c, ss in bank.task_specific_skills.items()
        },
        "common_mistakes": [_mistake_out(m) for m in bank.common_mistakes],
    }
    extra = dict(bank.model_extra or {})
    meta = extra.pop("metadata", None)
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta.update(
        total_skills=len(bank),
        general_skills=len(bank.general_skills),
        krill={
            "skills": stored,
            "history": [h.model_dump(mode="json") for h in bank.history],
            "current_cycle": bank.current_cycle,
            **({"bank_extra": extra} if extra else {}),
        },
    )
    out["metadata"] = meta
    return out


def _next_id(category: str, counters: dict[str, int], used: set) -> str:
    prefix = "gen" if category == GENERAL else official_name(category)
    while True:
        counters[prefix] = counters.get(prefix, 0) + 1
        sid = f"{prefix}_{counters[prefix]:03d}"
        if sid not in used:
            used.add(sid)
            return sid


def _mistake_out(m: CommonMistake) -> dict[str, Any]:
    d = m.model_dump(mode="json")
    out = {k: d[k] for k in ("mistake_id", "description", "why_it_happens", "how_to_avoid")}
    if m.category is not None:
        out["category"] = official_name(m.category)
    for k, v in d.items():
        if k not in out and k != "category" and v not in (None, [], {}):
            out[k] = v
    return out
