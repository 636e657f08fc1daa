"""Shared pieces of the fault suite: a deterministic teacher for the test server, bank and file checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

from krill.categories import known_categories
from krill.formats.banks import load_bank
from krill.skills.teachers.prompts import MAX_FIELD_CHARS

TRAJ_TAG = re.compile(r'<trajectory id="([^"]+)" category="([^"]+)">')


def teacher_answer(messages) -> str:
    """A real (rule-based) teacher computed from the prompt: one skill per category it shows, one
    cross-category skill, and a mistake for failure prompts. Same prompt → same answer."""
    user = messages[1]["content"] if len(messages) > 1 else ""
    found = TRAJ_TAG.findall(user)
    cats: dict[str, list[str]] = {}
    for tid, cat in found:
        cats.setdefault(cat, []).append(tid)
    skills = [
        {"name": f"{cat} routine", "principle": f"For {cat} tasks keep to the {cat} routine that worked.",
         "when_to_apply": f"{cat} tasks", "category": cat, "source_trajectory_ids": ids}
        for cat, ids in sorted(cats.items())
    ]  # fmt: skip
    skills.append({"name": "Admissible actions only", "principle": "Pick actions from the admissible list.",
                   "when_to_apply": "every step", "category": "General",
                   "source_trajectory_ids": [t for t, _ in found]})  # fmt: skip
    mistakes = []
    if "SUCCEEDED" not in user:
        mistakes.append({"description": "Repeating an action that did nothing", "why_it_happens": "no memory",
                         "how_to_avoid": "change action", "category": "General"})  # fmt: skip
    return json.dumps({"skills": skills, "mistakes": mistakes})


def check_bank(path: str | Path) -> dict:
    """Load a bank through krill's validating loader and check what a user relies on; returns its JSON."""
    bank = load_bank(path)
    cats = set(known_categories())
    for s in bank.all_skills():
        assert s.name.strip() and s.principle.strip(), f"empty skill field in {path}: {s}"
        assert len(s.name) <= MAX_FIELD_CHARS and len(s.principle) <= MAX_FIELD_CHARS, s.name[:80]
        assert s.is_general or s.category in cats, s.category
    for m in bank.common_mistakes:
        assert m.description.strip() and len(m.description) <= MAX_FIELD_CHARS
    return json.loads(Path(path).read_text())


def unparseable_files(root: str | Path) -> list[str]:
    """Every .json/.jsonl under `root` that does not parse completely (a truncated or torn file)."""
    bad = []
    root = Path(root)
    for p in [root] if root.is_file() else sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(".tmp"):
            continue
        try:
            if p.suffix == ".json":
                json.loads(p.read_text(encoding="utf-8"))
            elif p.suffix == ".jsonl":
                text = p.read_text(encoding="utf-8")
                assert not text or text.endswith("\n"), "torn last line"
                for line in text.splitlines():
                    if line.strip():
                        json.loads(line)
        except (ValueError, AssertionError) as exc:
            bad.append(f"{p}: {exc}")
    return bad


def bank_without_timestamps(bank: dict) -> dict:
    """A bank's JSON minus `history[].added_at` (the wall-clock time a skill was added)."""
    out = json.loads(json.dumps(bank))
    for h in out.get("history", []):
        h.pop("added_at", None)
    return out
