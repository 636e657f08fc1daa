"""What a teacher returns: proposed skills and common mistakes, each citing its trajectories.

The teachers package's leaf: both teachers, the prompt parser and the failure-mode analysis build
their proposals here, and nothing here imports them. Ids are uuid5 of the content, so a re-run or
a resumed run proposes identical ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from krill.schema import GENERAL, CommonMistake, Provenance, Skill

_NS = uuid.UUID("6f1c2b1e-9a43-4d0e-8f53-1b7f3c0d2a11")  # krill skill ids: uuid5 of the content
# what a teacher's proposals cost, summed by `Proposals.extend`
_COUNTS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "retries", "failures",
           "skipped_answers", "dropped")  # fmt: skip


def stable_id(*parts: str) -> str:
    """Deterministic uuid from content, so a re-run (or a resumed run) gives identical ids."""
    return str(uuid.uuid5(_NS, "|".join(parts)))


def _provenance(tids: list[str], success: bool | None) -> list[Provenance]:
    return [Provenance(trajectory_id=t, success=success) for t in dict.fromkeys(tids)]


def make_skill(
    name: str,
    principle: str,
    when: str,
    category: str,
    tids: list[str],
    success: bool | None,
    source: str = "distill",
) -> Skill:
    """A proposed skill supported by trajectories `tids` (which `success` they had, when known)."""
    text = dict(name=name, principle=principle, when_to_apply=when, category=category, source=source)
    return Skill(id=stable_id(category, name, principle), provenance=_provenance(tids, success), **text)


def make_mistake(
    description: str, why: str, how: str, category: str | None, tids: list[str], success: bool = False
) -> CommonMistake:
    """A proposed common mistake (`category` None: general) seen in trajectories `tids`."""
    text = dict(description=description, why_it_happens=why, how_to_avoid=how, category=category)
    return CommonMistake(
        mistake_id=stable_id(category or GENERAL, description), provenance=_provenance(tids, success), **text
    )


@dataclass
class Proposals:
    """A teacher's raw output before hierarchy checks and dedup, plus what it cost."""

    skills: list[Skill] = field(default_factory=list)
    mistakes: list[CommonMistake] = field(default_factory=list)
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    skipped_answers: int = 0  # prompts whose answer stayed invalid
    retries: int = 0  # API requests retried (429, 5xx, timeouts, resets, malformed bodies)
    failures: int = 0  # prompts whose request failed for good after every retry
    dropped: int = 0  # proposed items rejected by validation (empty field, unknown category)
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: Proposals) -> None:
        self.skills += other.skills
        self.mistakes += other.mistakes
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.warnings += other.warnings
