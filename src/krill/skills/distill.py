"""Distillation (SkillRL §3.1): trajectories → a small, deduplicated, two-tier skill bank.

    s+ = M_T(τ+, d)   successes → the strategic patterns that made them work
    s− = M_T(τ−, d)   failures  → what went wrong and how to avoid it (skills + common mistakes)

The teacher (analytic offline, or an LLM) proposes; this module checks and condenses:
1. hierarchy — a proposal's tier is decided by the categories of the trajectories that support it:
   ≥2 categories → General, one category → task-specific (the teacher's claim is overruled);
2. dedup — proposals with cosine ≥ `distill.merge_threshold` are merged into one skill carrying the
   union of provenance; a merged skill whose support now spans ≥2 categories becomes General.

Deterministic: skill ids are uuid5 of their content and the teacher's answers are cached, so a
re-run or a resumed run writes the same bank; only `history[].added_at` timestamps differ.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.progress import progress_bar
from krill.schema import GENERAL, CommonMistake, Skill, SkillBank, Trajectory
from krill.skills.bank_ops import dedup_mistakes, dedup_skills
from krill.skills.teachers import Teacher, make_teacher
from krill.skills.teachers.proposals import Proposals
from krill.skills.trajectory_facts import categories_of


@dataclass
class DistillReport:
    """What a distillation read, proposed, merged and produced, and what the teacher cost."""

    teacher: str = ""
    trajectories: int = 0
    successes: int = 0
    failures: int = 0
    proposed_skills: int = 0
    proposed_mistakes: int = 0
    dropped: int = 0  # proposals rejected by validation (empty field, unknown category)
    skipped_answers: int = 0  # teacher answers that stayed invalid
    reclassified: int = 0  # tier claims overruled by the support's categories
    merged: int = 0  # skill proposals folded into a near-duplicate
    merged_mistakes: int = 0
    general: int = 0
    per_category: dict[str, int] = field(default_factory=dict)
    mistakes: int = 0
    teacher_calls: int = 0
    cache_hits: int = 0
    api_retries: int = 0  # requests retried after an API fault (rate limit, 5xx, timeout, bad body)
    api_failures: int = 0  # prompts whose request failed for good (their answer is skipped)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def total_skills(self) -> int:
        return self.general + sum(self.per_category.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_skills": self.total_skills}

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the CLI's summary table."""
        rows = [
            ("teacher", self.teacher),
            (
                "trajectories read",
                f"{self.trajectories} ({self.successes} successes, {self.failures} failures)",
            ),
            ("proposals", f"{self.proposed_skills} skills, {self.proposed_mistakes} mistakes"),
            ("merged near-duplicates", f"{self.merged} skills, {self.merged_mistakes} mistakes"),
            ("tier corrected", str(self.reclassified)),
            ("dropped invalid", f"{self.dropped} items, {self.skipped_answers} answers"),
            ("general skills", str(self.general)),
        ]
        rows += [(f"  {cat}", str(n)) for cat, n in sorted(self.per_category.items())]
        rows += [
            ("total skills", str(self.total_skills)),
            ("common mistakes", str(self.mistakes)),
            ("teacher calls", f"{self.teacher_calls} ({self.cache_hits} from cache)"),
            ("API faults", f"{self.api_retries} retried, {self.api_failures} failed for good"),
            ("tokens", f"{self.prompt_tokens} prompt + {self.completion_tokens} completion"),
            ("wall time", f"{self.wall_s:.1f} s"),
        ]
        return rows


def support_categories(item: Skill | CommonMistake, cats: dict[str, str]) -> set[str]:
    return {cats[p.trajectory_id] for p in item.provenance if p.trajectory_id in cats}


def check_tier(skill: Skill, cats: dict[str, str]) -> bool:
    """Set the skill's tier from its support (≥2 categories → General); True when the claim changed."""
    support = support_categories(skill, cats)
    if not support:
        return False  # nothing to check against (e.g. ids from another run): keep the claim
    want = GENERAL if len(support) >= 2 else next(iter(support))
    if skill.category == want:
        return False
    skill.category = want
    return True


def check_mistake_tier(m: CommonMistake, cats: dict[str, str]) -> bool:
    support = support_categories(m, cats)
    if not support:
        return False
    want = None if len(support) >= 2 else next(iter(support))
    changed = m.category != want
    m.category = want
    return changed


def distill(
    trajectories: list[Trajectory], teacher: Teacher, embedder: Any, cfg: KrillConfig | None = None
) -> tuple[SkillBank, DistillReport]:
    """Distill `trajectories` with `teacher` into a deduplicated two-tier bank (skills embedded)."""
    cfg = cfg or KrillConfig()
    t0 = time.perf_counter()
    trajs = list(trajectories)
    cats = categories_of(trajs)
    report = DistillReport(teacher=getattr(teacher, "name", type(teacher).__name__), trajectories=len(trajs))
    report.successes = sum(t.success for t in trajs)
    report.failures = len(trajs) - report.successes
    with progress_bar(f"distill ({report.teacher})", len(trajs)) as bar:
        props: Proposals = teacher.propose(trajs, on_progress=bar.advance)
        bar.status("dedup")
        bank = condense(props, cats, embedder, cfg.distill.merge_threshold, report)
    report.wall_s = time.perf_counter() - t0
    return bank, report


def condense(
    props: Proposals, cats: dict[str, str], embedder: Any, threshold: float, report: DistillReport
) -> SkillBank:
    """Hierarchy check → dedup/merge → hierarchy check again (merges can span categories) → bank."""
    report.proposed_skills, report.proposed_mistakes = len(props.skills), len(props.mistakes)
    report.dropped, report.skipped_answers = props.dropped, props.skipped_answers
    report.teacher_calls, report.cache_hits = props.calls, props.cache_hits
    report.api_retries, report.api_failures = props.retries, props.failures
    report.prompt_tokens, report.completion_tokens = props.prompt_tokens, props.completion_tokens
    report.warnings = list(dict.fromkeys(props.warnings))
    skills = [s.model_copy(deep=True) for s in props.skills]
    report.reclassified = sum(check_tier(s, cats) for s in skills)
    skills, report.merged = dedup_skills(skills, embedder, threshold)
    for s in skills:
        check_tier(s, cats)
    mistakes = [m.model_copy(deep=True) for m in props.mistakes]
    for m in mistakes:
        check_mistake_tier(m, cats)
    mistakes, report.merged_mistakes = dedup_mistakes(mistakes, embedder, threshold)
    for m in mistakes:
        check_mistake_tier(m, cats)
    bank = SkillBank(common_mistakes=mistakes)
    for s in skills:
        bank.add(s, cycle=0)
    report.general = len(bank.general_skills)
    report.per_category = dict(Counter(s.category for s in skills if not s.is_general))
    report.mistakes = len(mistakes)
    return bank


# -- the file-level entry point -------------------------------------------------------------------
def check_trajectories(trajs: list[Trajectory], path: str | Path) -> None:
    """Refuse inputs distillation cannot use, with a one-line error naming the file and trajectory."""
    if not trajs:
        raise KrillError("no trajectories in file (it is empty)", path=path)
    for i, t in enumerate(trajs):
        if not t.steps:
            raise KrillError("trajectory has no steps", path=path, where=f"trajectory {i} (id {t.id})")
    seen: set[str] = set()
    for i, t in enumerate(trajs):
        if t.id in seen:
            raise KrillError(f"duplicate trajectory id {t.id!r}", path=path, where=f"trajectory {i}")
        seen.add(t.id)


def work_dir_for(out: str | Path) -> Path:
    """`data/skill_bank.json` → `data/skill_bank.json.work/` (teacher cache, resumable)."""
    return Path(f"{out}.work")


def distill_file(
    trajectories_path: str | Path,
    out: str | Path,
    cfg: KrillConfig,
    *,
    teacher: str | None = None,
    embedder: Any = None,
) -> tuple[SkillBank, DistillReport]:
    """Read trajectories, distill, and write the bank atomically (nothing half-written on failure)."""
    from krill.formats.banks import save_bank
    from krill.formats.trajectories import load_trajectories
    from krill.runlock import run_lock
    from krill.runrecord import record_config

    trajs = load_trajectories(trajectories_path, require_steps=True)
    check_trajectories(trajs, trajectories_path)
    if embedder is None:
        from krill.models import build_embedder

        embedder = build_embedder(cfg)
    with run_lock(out, "distill"):
        record_config(
            cfg, out, check=False
        )  # the bank is rewritten whole; its teacher cache is keyed by prompt
        bank, report = distill(trajs, make_teacher(cfg, work_dir_for(out), teacher), embedder, cfg)
        save_bank(bank, out)
    return bank, report
