"""The LLM teacher: skills from an OpenAI-compatible model, batched, concurrent, cached, validated.

Trajectories are grouped into prompts of `distill.trajectories_per_call`, successes and failures
apart (s+ and s− prompts differ) and categories interleaved, so one prompt shows the teacher
several categories at once and a cross-category claim can be checked against its cited ids.
The chat client runs `distill.concurrency` requests at a time, re-asks an invalid answer once, and
appends each valid answer to the cache in the output's work dir as it arrives: a killed run resumes
without re-asking finished prompts and a re-run costs no request at all.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

from krill.categories import ALFWORLD_CATEGORIES, known_categories
from krill.config import KrillConfig
from krill.schema import Skill, Trajectory
from krill.skills.teachers.prompts import (
    ANSWER_SCHEMA,
    distill_prompt,
    evolve_prompt,
    parse_answer,
    trajectory_block,
)
from krill.skills.teachers.proposals import Proposals
from krill.skills.trajectory_facts import categories_of

log = logging.getLogger(__name__)
_STAT_NAMES = ("requests", "cache_hits", "prompt_tokens", "completion_tokens", "retries", "failures")
# Trajectory text per prompt (~6k tokens): several trajectories share a call only where they fit.
MAX_PROMPT_CHARS = 24_000


def interleave(trajs: list[Trajectory], cats: dict[str, str]) -> list[Trajectory]:
    """Round-robin over categories (stable within each) so consecutive trajectories differ in category."""
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        groups[cats[t.id]].append(t)
    out: list[Trajectory] = []
    queues = list(groups.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def make_batches(
    trajs: list[Trajectory], cats: dict[str, str], per_call: int, max_chars: int = 0, size=None
) -> list[list[Trajectory]]:
    """Successes and failures in separate prompts of ≤ `per_call` trajectories and ≤ `max_chars` of text.

    `size(traj)` gives a trajectory's text length in the prompt; a single oversized trajectory still
    gets a prompt of its own (its text is already compressed).
    """
    batches: list[list[Trajectory]] = []
    for outcome in (True, False):
        cur: list[Trajectory] = []
        used = 0
        for t in interleave([t for t in trajs if t.success == outcome], cats):
            n = size(t) if size and max_chars else 0
            if cur and (len(cur) >= per_call or (max_chars and used + n > max_chars)):
                batches.append(cur)
                cur, used = [], 0
            cur.append(t)
            used += n
        if cur:
            batches.append(cur)
    return batches


class LLMTeacher:
    """`Teacher` over a `ChatClient` (`complete_json(prompts, schema=...)`)."""

    name = "llm"

    def __init__(self, client, cfg: KrillConfig | None = None):
        self.client = client
        self.cfg = cfg or KrillConfig()

    def _stats(self) -> dict[str, int]:
        stats = getattr(self.client, "stats", None)
        return {k: int(getattr(stats, k, 0) or 0) for k in _STAT_NAMES}

    def _ask(
        self, prompts: list, on_done: Callable[[int], None] | None = None, sizes: list[int] | None = None
    ):
        """Complete prompts in chunks (for progress), returning answers in order and the cost."""
        before = self._stats()
        chunk = max(64, self.cfg.distill.concurrency * 8)  # big chunks: each one waits for its slowest answer
        answers: list = []
        for i in range(0, len(prompts), chunk):
            answers += self.client.complete_json(prompts[i : i + chunk], schema=ANSWER_SCHEMA)
            if on_done:
                on_done(sum(sizes[i : i + chunk]) if sizes else len(prompts[i : i + chunk]))
        after = self._stats()
        return answers, {k: after[k] - before[k] for k in _STAT_NAMES}

    def propose(self, trajectories: Iterable[Trajectory], on_progress=None) -> Proposals:
        """One prompt per batch of trajectories; answers validated into skills and common mistakes."""
        trajs = list(trajectories)
        cats = categories_of(trajs)
        known = sorted(set(cats.values()), key=lambda c: (c not in ALFWORLD_CATEGORIES, c))
        mo = self.cfg.distill.max_observation_chars
        size = lambda t: len(trajectory_block(t, mo, cats[t.id]))  # noqa: E731
        batches = make_batches(trajs, cats, self.cfg.distill.trajectories_per_call, MAX_PROMPT_CHARS, size)
        prompts = [distill_prompt(b, cats, known, mo) for b in batches]
        answers, cost = self._ask(prompts, on_progress, [len(b) for b in batches])
        out = Proposals(calls=cost["requests"], cache_hits=cost["cache_hits"],
                        prompt_tokens=cost["prompt_tokens"], completion_tokens=cost["completion_tokens"],
                        retries=cost["retries"], failures=cost["failures"])  # fmt: skip
        for batch, answer in zip(batches, answers, strict=True):
            out.extend(
                parse_answer(answer, {t.id: cats[t.id] for t in batch}, batch[0].success, known_categories())
            )
        for w in dict.fromkeys(out.warnings):
            log.warning("teacher: %s", w)
        return out

    def propose_for_category(self, category, failures, existing_skills, max_new, shallow=None) -> list[Skill]:
        """Evolution: ≤ max_new new skills for `category` from its real failures (deep + shallow)."""
        if max_new <= 0 or not failures:
            return []
        ecfg = self.cfg.evolution
        deep = failures[: ecfg.deep]
        shallow = list(shallow) if shallow is not None else failures[ecfg.deep : ecfg.deep + ecfg.shallow]
        prompt = evolve_prompt(
            category, deep, shallow, existing_skills, max_new, self.cfg.distill.max_observation_chars
        )
        answers, _ = self._ask([prompt])
        props = parse_answer(answers[0], {t.id: category for t in deep}, False, None)
        for w in props.warnings:
            log.warning("teacher (evolution, %s): %s", category, w)
        have = {s.name.strip().lower() for s in existing_skills}
        out: list[Skill] = []
        for s in props.skills:
            if s.name.strip().lower() in have:
                continue
            s.category = category  # evolution files new skills under the failing category only
            s.source = "evolution"
            out.append(s)
        return out[:max_new]
