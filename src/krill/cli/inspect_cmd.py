"""`krill inspect [BANK]`: print a skill bank, general skills first, then per category.

Each skill prints as the original krill did, wrapped to the terminal width with a hanging indent:

    [5d352009] Heat Management
      Principle: Safely handle hot objects and determine appropriate places
                 for cooling or storage.
      Apply when: When dealing with tasks that involve hot items ...

and the output ends with `Total skills: N`, `General: n` and one line per category.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import typer

from krill.categories import normalize_category
from krill.cli.common import DEFAULT_BANK, get_config
from krill.formats.banks import bank_to_json, category_order, load_bank
from krill.schema import CommonMistake, Skill, SkillBank


def inspect(
    bank: str | None = typer.Argument(
        None, help=f"Skill bank (krill/Rust or official SkillRL JSON). Default: {DEFAULT_BANK}"
    ),
    category: str | None = typer.Option(
        None,
        "--category",
        help="Only this category (e.g. Heat, heat, pick_heat_then_place_in_recep). Default: all.",
    ),
    search: str | None = typer.Option(
        None, "--search", help="Only skills whose name/principle/when-to-apply contain TEXT. Default: all."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Machine-readable: the (filtered) bank in the krill format."
    ),
    summary: bool = typer.Option(False, "--summary", help="Only the counts."),
    example: bool = typer.Option(False, "--example", help="Show the example bank shipped with krill."),
) -> None:
    """Print a skill bank: general skills first, then per category, then the counts."""
    get_config()  # registers user categories (env.categories) before the bank is read
    path = _bank_path(bank, example)
    loaded = filter_bank(load_bank(path), category=category, search=search)
    if as_json:
        typer.echo(bank_to_json(loaded), nl=False)
        return
    typer.echo(render_bank(loaded, width=terminal_width(), summary_only=summary, source=str(path)), nl=False)


def _bank_path(bank: str | None, example: bool) -> Path:
    if example:
        from krill.data import example_bank_path

        return example_bank_path()
    return Path(bank or DEFAULT_BANK)


def filter_bank(bank: SkillBank, *, category: str | None = None, search: str | None = None) -> SkillBank:
    """A copy holding only the requested category (general dropped) and/or the skills matching TEXT."""
    out = bank.model_copy(deep=True)
    if category:
        cat = normalize_category(category, where="--category")
        out.general_skills = []
        out.task_specific_skills = {cat: out.task_specific_skills.get(cat, [])}
        out.common_mistakes = [m for m in out.common_mistakes if m.category == cat]
    if search:
        needle = search.lower()
        hit = lambda s: needle in f"{s.name}\n{s.principle}\n{s.when_to_apply}".lower()  # noqa: E731
        out.general_skills = [s for s in out.general_skills if hit(s)]
        out.task_specific_skills = {
            c: [s for s in ss if hit(s)] for c, ss in out.task_specific_skills.items()
        }
        out.common_mistakes = [
            m for m in out.common_mistakes if needle in f"{m.description}\n{m.how_to_avoid}".lower()
        ]
    return out


def terminal_width() -> int:
    # shutil honours $COLUMNS, so piped output and tests get a stable width
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def render_bank(bank: SkillBank, *, width: int = 100, summary_only: bool = False, source: str = "") -> str:
    """The whole `krill inspect` text: sections of skills, common mistakes, then the counts."""
    lines: list[str] = []
    cats = category_order([c for c in bank.categories() if bank.task_specific_skills[c]])
    if not summary_only:
        if source:
            lines += [f"Skill bank: {source}", ""]
        if bank.general_skills:
            lines += [f"== General skills ({len(bank.general_skills)}) ==", ""]
            for s in bank.general_skills:
                lines += render_skill(s, width) + [""]
        for c in cats:
            skills = bank.task_specific_skills[c]
            lines += [f"== {c} skills ({len(skills)}) ==", ""]
            for s in skills:
                lines += render_skill(s, width) + [""]
        if bank.common_mistakes:
            lines += [f"== Common mistakes ({len(bank.common_mistakes)}) ==", ""]
            for m in bank.common_mistakes:
                lines += render_mistake(m, width) + [""]
    lines.append(f"Total skills: {len(bank)}")
    lines.append(f"General: {len(bank.general_skills)}")
    lines += [f"{c}: {len(bank.task_specific_skills[c])}" for c in cats]
    return "\n".join(lines) + "\n"


def render_skill(skill: Skill, width: int) -> list[str]:
    return [
        f"[{skill.short_id}] {skill.name}",
        *_field("Principle", skill.principle, width),
        *_field("Apply when", skill.when_to_apply, width),
    ]


def render_mistake(m: CommonMistake, width: int) -> list[str]:
    scope = m.category or "all categories"
    lines = [f"[{m.mistake_id.replace('-', '')[:8]}] ({scope})", *_field("Mistake", m.description, width)]
    if m.why_it_happens:
        lines += _field("Why", m.why_it_happens, width)
    if m.how_to_avoid:
        lines += _field("Avoid by", m.how_to_avoid, width)
    return lines


def _field(label: str, text: str, width: int) -> list[str]:
    head = f"  {label}: "
    return textwrap.wrap(
        " ".join(text.split()),
        width=width,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_on_hyphens=False,
    ) or [head.rstrip()]
