"""Teachers: trajectories in, proposed skills and common mistakes out (SkillRL's M_T).

Two teachers implement `Teacher`:
- `analytic` (`AnalyticTeacher`, offline): skills computed from counts over the trajectories
  themselves (`analytic.py` ALFWorld successes, `failure_modes.py` failures, `analytic_webshop.py`);
- `llm` (`LLMTeacher`): an OpenAI-compatible model asked with `prompts.py`, answers validated there.
Both build their output with `proposals.py`, the package's leaf. Distillation calls `propose` once
over all trajectories; evolution calls `propose_for_category` for each category below threshold.
`make_teacher` is the one place a teacher's name becomes a teacher.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.schema import Skill, Trajectory
from krill.skills.teachers.proposals import Proposals

TEACHERS = ("analytic", "llm")  # the names `model.teacher.backend` and `--teacher` accept


class Teacher(Protocol):
    """What distillation and evolution ask of a teacher."""

    name: str  # one of TEACHERS: the distillation report's `teacher`

    def propose(
        self, trajectories: Iterable[Trajectory], on_progress: Callable[[int], None] | None = None
    ) -> Proposals:
        """Skills and common mistakes from `trajectories`; `on_progress(n)` as each n are done."""
        ...

    def propose_for_category(
        self,
        category: str,
        failures: list[Trajectory],
        existing_skills: list[Skill],
        max_new: int,
        shallow: list[Trajectory] | None = None,
    ) -> list[Skill]:
        """Evolution: ≤ `max_new` new skills filed under `category`, from its failures (`shallow`:
        more failures, read summarised; None lets the teacher split `failures` itself)."""
        ...


def make_teacher(cfg: KrillConfig, work_dir: str | Path | None = None, kind: str | None = None) -> Teacher:
    """The teacher named `kind` (default `model.teacher.backend`): analytic, or llm (its answers cached
    in `work_dir/teacher_cache.jsonl`, `distill.concurrency` requests at a time)."""
    kind = (kind or cfg.model.teacher.backend or "analytic").lower()
    if kind == "analytic":
        from krill.skills.teachers.analytic import AnalyticTeacher

        return AnalyticTeacher(cfg)
    if kind == "llm":
        from krill.models import build_chat_client
        from krill.skills.teachers.llm import LLMTeacher

        cache = Path(work_dir) / "teacher_cache.jsonl" if work_dir else None
        # distill.concurrency is the documented knob for distillation
        tcfg = cfg.override({"model.teacher.concurrency": cfg.distill.concurrency})
        return LLMTeacher(build_chat_client(tcfg, cache), cfg)
    raise KrillError(
        f"unknown teacher {kind!r}; choose {' or '.join(TEACHERS)}", where="model.teacher.backend"
    )
