"""Skill withdrawal during GRPO (`skills.curriculum`): the policy keeps what the skills taught without
paying their tokens (Skill0, arXiv 2604.02268: 87.9 % vs SkillRL's 82.4 % on ALFWorld at 3B, with
0.38K instead of 2.21K prompt tokens per step).

- `linear`: at GRPO iteration t of T, each retrieved list (general skills, task skills, mistakes)
  keeps the share f_t = 1 − (t+1)/T of its entries, rounded half up: the last iteration shows none.
- `success`: a category's skills are withdrawn for good once its rollout success rate in an earlier
  iteration reached `skills.curriculum_threshold` (read from the logged `charts/success_rate/CAT`).

The retriever is wrapped, not changed: evolution keeps growing the bank underneath, and evaluation
(which does not wrap) can run with every skill or none.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from krill.skills.retrieval import Retrieved

SUCCESS_KEY = "charts/success_rate/"


def shown_fraction(iteration: int, iterations: int) -> float:
    """f_t = 1 − (t+1)/T: the share of each retrieved list shown at GRPO iteration t (0-based) of T.

    >>> [shown_fraction(t, 4) for t in range(4)]
    [0.75, 0.5, 0.25, 0.0]
    """
    return max(0.0, 1.0 - (iteration + 1) / max(1, iterations))


def keep(n: int, fraction: float) -> int:
    """How many of n entries a share keeps, rounded half up (not to even): keep(2, 0.75) == 2."""
    return int(n * fraction + 0.5)


def withdrawn_categories(history: list[dict[str, Any]], threshold: float) -> set[str]:
    """Categories whose rollout success reached `threshold` in any logged iteration."""
    return {
        key[len(SUCCESS_KEY) :]
        for row in history
        for key, value in row.items()
        if key.startswith(SUCCESS_KEY) and value >= threshold
    }


def trim(retrieved: Retrieved, fraction: float) -> Retrieved:
    """The first `fraction` of each list (they are ranked: the best stay)."""
    return replace(
        retrieved,
        general=retrieved.general[: keep(len(retrieved.general), fraction)],
        specific=retrieved.specific[: keep(len(retrieved.specific), fraction)],
        mistakes=retrieved.mistakes[: keep(len(retrieved.mistakes), fraction)],
        memories=retrieved.memories[: keep(len(retrieved.memories), fraction)],
    )


@dataclass
class CurriculumRetriever:
    """A retriever that shows `fraction` of what `inner` retrieves, and nothing for `withdrawn` categories."""

    inner: Any
    fraction: float = 1.0
    withdrawn: frozenset[str] = frozenset()

    def retrieve(self, task: str, category: str | None = None) -> Retrieved:
        found = self.inner.retrieve(task, category)
        cat = found.category or self.inner.task_category(task, category)
        return trim(found, 0.0 if cat in self.withdrawn else self.fraction)

    def task_category(self, task: str, category: str | None) -> str | None:
        return self.inner.task_category(task, category)


def curriculum_retriever(retriever: Any, cfg: Any, iteration: int, history: list[dict[str, Any]]) -> Any:
    """`retriever` as GRPO iteration `iteration` should see it under `cfg.skills.curriculum` (itself for none)."""
    mode = cfg.skills.curriculum
    if retriever is None or mode == "none":
        return retriever
    if mode == "linear":
        return CurriculumRetriever(retriever, shown_fraction(iteration, cfg.rl.iterations))
    return CurriculumRetriever(
        retriever, withdrawn=frozenset(withdrawn_categories(history, cfg.skills.curriculum_threshold))
    )
