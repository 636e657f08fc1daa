"""Skill-bank files: the Rust krill serde JSON (krill's native format) and the official SkillRL JSON.

`load_bank` detects the format; `save_bank` writes either, atomically. The krill writer emits exactly
the Rust field set plus krill's extras only when they carry information (non-empty provenance, a
`source`, common mistakes), so a bank written by Rust krill reads back and re-saves identically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from krill.categories import known_categories, normalize_category
from krill.errors import KrillError
from krill.formats.bank_checks import check_bank, iter_located  # noqa: F401  (re-exported)
from krill.io import parse_json, read_text, require_file, to_json, write_json
from krill.schema import GENERAL, SkillBank, validate_as

BankFormat = Literal["krill", "official"]
FORMATS = ("krill", "official")


# -- reading ---------------------------------------------------------------------------------------
BANK_HINT = "run `krill distill` to create it, pass a bank path, or try `krill inspect --example`"


def load_bank(path: str | Path) -> SkillBank:
    """Read a skill bank in the krill/Rust or official SkillRL format (auto-detected)."""
    require_file(path, BANK_HINT)
    data = read_bank_json(path)
    fmt = detect_bank_format(data, path=path)
    if fmt == "official":
        from krill.formats.official import official_to_bank

        return official_to_bank(data, path=path)
    return krill_dict_to_bank(data, path=path)


def read_bank_json(path: str | Path) -> dict[str, Any]:
    """Parse the file; a NaN/Infinity literal is reported at its field path, not just 'invalid JSON'."""
    text = read_text(path)
    if not text.strip():
        raise KrillError("empty file, expected a skill bank (JSON object)", path=path)
    data = parse_json_finite(text, path)
    if not isinstance(data, dict):
        raise KrillError(f"expected a JSON object with general_skills, got {type(data).__name__}", path=path)
    return data


def detect_bank_format(data: dict[str, Any], *, path: Any = None) -> BankFormat:
    """'official' when skills carry `skill_id`/`title`; 'krill' when they carry `name`/`id`."""
    for skill in _raw_skills(data):
        if not isinstance(skill, dict):
            continue
        if "title" in skill or "skill_id" in skill:
            return "official"
        if "name" in skill or "id" in skill:
            return "krill"
    if "history" in data or "current_cycle" in data:
        return "krill"
    if "metadata" in data or "common_mistakes" in data:
        return "official"
    if "general_skills" not in data and "task_specific_skills" not in data:
        raise KrillError("not a skill bank: expected general_skills and task_specific_skills", path=path)
    return "krill"


def krill_dict_to_bank(data: dict[str, Any], *, path: Any = None) -> SkillBank:
    """Validate a krill/Rust bank dict; errors name the field path (`general_skills[3].principle`)."""
    _check_categories(data, path)
    bank = validate_as(SkillBank, data, path=path)
    check_bank(bank, path=path)
    return bank


# -- writing ---------------------------------------------------------------------------------------
def save_bank(bank: SkillBank, path: str | Path, fmt: str = "krill") -> Path:
    """Write a bank atomically as `krill` (Rust-compatible) or `official` SkillRL JSON."""
    return write_json(path, bank_to_dict(bank, fmt))


def bank_to_dict(bank: SkillBank, fmt: str = "krill") -> dict[str, Any]:
    if fmt == "krill":
        return bank_to_krill_dict(bank)
    if fmt == "official":
        from krill.formats.official import bank_to_official

        return bank_to_official(bank)
    raise KrillError(f"unknown bank format {fmt!r}; choose one of {', '.join(FORMATS)}")


def bank_to_json(bank: SkillBank, fmt: str = "krill") -> str:
    return to_json(bank_to_dict(bank, fmt))


def bank_to_krill_dict(bank: SkillBank) -> dict[str, Any]:
    """The Rust serde shape; krill extras appear only when they hold something."""
    out: dict[str, Any] = {
        "general_skills": [_skill_dict(s) for s in bank.general_skills],
        "task_specific_skills": {
            c: [_skill_dict(s) for s in ss] for c, ss in bank.task_specific_skills.items()
        },
        "history": [h.model_dump(mode="json") for h in bank.history],  # required by the Rust reader
        "current_cycle": bank.current_cycle,
    }
    if bank.common_mistakes:
        out["common_mistakes"] = [_prune(m.model_dump(mode="json")) for m in bank.common_mistakes]
    for key, value in (bank.model_extra or {}).items():
        out.setdefault(key, value)
    return out


def _skill_dict(skill) -> dict[str, Any]:
    d = skill.model_dump(mode="json")
    out = {k: d[k] for k in ("id", "name", "principle", "when_to_apply", "category", "embedding")}
    for k, v in d.items():
        if k not in out and v not in (None, [], {}):
            out[k] = v
    return out


def _prune(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, [], {})}


# -- helpers ---------------------------------------------------------------------------------------
def _raw_skills(data: dict[str, Any]):
    gen = data.get("general_skills")
    if isinstance(gen, list):
        yield from gen
    tss = data.get("task_specific_skills")
    if isinstance(tss, dict):
        for skills in tss.values():
            if isinstance(skills, list):
                yield from skills


def _check_categories(data: dict[str, Any], path: Any) -> None:
    """Name the field path of an unknown category (the model's validator cannot add it)."""
    tss = data.get("task_specific_skills")
    if isinstance(tss, dict):
        for key, skills in tss.items():
            normalize_category(key, path=path, where=f"task_specific_skills.{key}")
            for i, s in enumerate(skills if isinstance(skills, list) else []):
                _check_skill_category(s, path, f"task_specific_skills.{key}[{i}].category")
    gen = data.get("general_skills")
    for i, s in enumerate(gen if isinstance(gen, list) else []):
        _check_skill_category(s, path, f"general_skills[{i}].category")


def _check_skill_category(skill: Any, path: Any, where: str) -> None:
    if not isinstance(skill, dict) or "category" not in skill:
        return
    cat = skill["category"]
    if isinstance(cat, dict) and set(cat) == {"TaskSpecific"}:
        cat = cat["TaskSpecific"]
    if cat in (GENERAL, None) or isinstance(cat, dict):
        return  # malformed dicts are reported by the model with their path
    normalize_category(cat, path=path, where=where)


def parse_json_finite(text: str, path: Any, where: str = "", line_offset: int = 0) -> Any:
    """`parse_json`, but a NaN/Infinity literal is reported at its field path (`where` prefixes it)."""
    try:
        return parse_json(text, path=path, line_offset=line_offset)
    except KrillError as exc:
        if "is not allowed" not in str(exc):
            raise
        try:
            data = json.loads(text, parse_constant=float)  # only to locate the non-finite value
        except (ValueError, RecursionError):
            raise exc from None
        raise_non_finite(data, path, where)
        raise


def raise_non_finite(obj: Any, path: Any, where: str = "") -> None:
    """Raise at the field path of the first NaN/Infinity in a parsed object (`where` may end in ': ')."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise KrillError(
            f"{obj} is not a finite number (NaN/Infinity are not JSON)", path=path, where=where or None
        )
    if isinstance(obj, dict):
        for k, v in obj.items():
            sep = "." if where and not where.endswith(" ") else ""
            raise_non_finite(v, path, f"{where}{sep}{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            raise_non_finite(v, path, f"{where}[{i}]")


def category_order(categories: list[str]) -> list[str]:
    """Known categories in their canonical order (Pick … Cool, WebShop), then the rest as given."""
    known = known_categories()
    return sorted(
        categories, key=lambda c: (known.index(c) if c in known else len(known), categories.index(c))
    )
