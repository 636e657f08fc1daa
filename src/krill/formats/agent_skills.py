"""Export a bank as Agent Skills: one folder per skill holding a `SKILL.md`.

`SKILL.md` opens with YAML front matter (`name`: a lowercase-hyphen slug, `description`: when to
apply, which is what an agent tool matches on), then the principle, when to apply and provenance,
so distilled skills can be used by other agent tools.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from krill.errors import KrillError
from krill.io import atomic_write_text
from krill.schema import Skill, SkillBank

MAX_NAME = 64  # Agent Skills names are short slugs
MAX_DESCRIPTION = 1024


def slugify(text: str) -> str:
    """'Heat with the Microwave!' → 'heat-with-the-microwave'.

    >>> slugify("Heat with the Microwave!")
    'heat-with-the-microwave'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:MAX_NAME].rstrip("-") or "skill"


def export_agent_skills(bank: SkillBank, out_dir: str | Path) -> list[Path]:
    """Write `<out_dir>/<slug>/SKILL.md` for every skill; returns the files written.

    Every folder name is a slug and every path is checked to stay under `out_dir` before anything
    is written, so a hostile id or name (or a planted symlink) cannot write elsewhere.
    """
    out_dir = Path(out_dir)
    used: set[str] = set()
    plan = []
    for skill in bank.all_skills():
        slug = _unique(slugify(skill.name), skill, used)
        plan.append((_inside(out_dir, slug, skill), skill, slug))
    return [atomic_write_text(path, skill_markdown(skill, slug)) for path, skill, slug in plan]


def skill_markdown(skill: Skill, slug: str) -> str:
    front = {"name": slug, "description": skill.when_to_apply[:MAX_DESCRIPTION]}
    tier = "General" if skill.is_general else f"Task-specific: {skill.category}"
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000).strip(),
        "---",
        "",
        f"# {skill.name}",
        "",
        f"**Principle.** {skill.principle}",
        "",
        f"**When to apply.** {skill.when_to_apply}",
        "",
        "## Provenance",
        "",
        f"- krill skill id: `{skill.id}` ({tier})",
    ]
    if skill.source:
        lines.append(f"- source: {skill.source}")
    official = (skill.model_extra or {}).get("official_id")
    if official:
        lines.append(f"- official SkillRL id: `{official}`")
    for p in skill.provenance:
        outcome = {True: "success", False: "failure"}.get(p.success, "unknown outcome")
        lines.append(f"- trajectory `{p.trajectory_id}` ({outcome})")
    return "\n".join(lines) + "\n"


def _unique(slug: str, skill: Skill, used: set[str]) -> str:
    if slug in used:  # two skills with the same name: disambiguate by id, stably
        slug = f"{slug[: MAX_NAME - 9]}-{_id_slug(skill)}"
    base, n = slug, 2
    while slug in used:  # short ids can coincide too (hand-written ids)
        slug, n = f"{base[: MAX_NAME - 4]}-{n}", n + 1
    used.add(slug)
    return slug


def _id_slug(skill: Skill) -> str:
    slug = re.sub(r"[^a-z0-9]+", "", skill.short_id.lower())
    if not slug:
        raise KrillError(f"{_who(skill)}: the id has no letters or digits to use in a folder name")
    return slug


def _inside(out_dir: Path, slug: str, skill: Skill) -> Path:
    """`out_dir/slug/SKILL.md`, refused when it resolves outside `out_dir` (e.g. through a symlink)."""
    path = out_dir / slug / "SKILL.md"
    if not path.resolve().is_relative_to(out_dir.resolve()):
        raise KrillError(f"{_who(skill)}: its folder {slug!r} resolves outside {out_dir}")
    return path


def _who(skill: Skill) -> str:
    return f"skill {skill.name[:80]!r} (id {skill.id[:80]!r})"
