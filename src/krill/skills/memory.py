"""Raw-trajectory memory: the paper's "raw trajectories instead of skills" baseline, retrieved like skills.

The successful trajectories of a collection are embedded once by their task text. A task retrieves
the top-K of them with the skill retriever's rule (`krill.skills.retrieval`):

    M_ret = TopK({τ ∈ M_k : cos(e_d, e_τ) > δ}, K)        (M_k: memories of the task's category)

with the same K (`skill_retrieval.top_k`) and δ (`threshold_for`), falling back to every memory when
the category has none. The agent's prompt then holds the trajectories written out compactly
(`trajectory_text.compress_trajectory`) under `## Similar Past Trajectories`, where skills would be;
nothing else in the prompt changes, so success and prompt tokens compare one-for-one with skills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from krill.categories import category_from_task, normalize_category
from krill.errors import KrillError
from krill.models.embedder import normalize_rows
from krill.schema import Trajectory
from krill.skills.retrieval import Retrieved, threshold_for, top_k_indices
from krill.skills.trajectory_facts import categories_of
from krill.skills.trajectory_text import compress_trajectory

if TYPE_CHECKING:
    from krill.config import KrillConfig, RetrievalConfig
    from krill.models.base import Embedder

MEMORY_HEADER = "## Similar Past Trajectories"


def memory_block(traj: Trajectory, max_obs_chars: int) -> str:
    """One remembered trajectory as the prompt (and the token-compression report) shows it."""
    return f"Task: {traj.task_description}\n{compress_trajectory(traj, max_obs_chars=max_obs_chars)}"


class MemoryRetriever:
    """Answers `retrieve(task, category)` with the K most similar successful trajectories (`Retrieved.memories`)."""

    def __init__(
        self,
        trajectories: list[Trajectory],
        embedder: Embedder,
        rcfg: RetrievalConfig | None = None,
        max_obs_chars: int = 300,
    ):
        from krill.config import RetrievalConfig

        self.cfg = rcfg or RetrievalConfig()
        self.memory = [t for t in trajectories if t.success]
        if not self.memory:
            raise KrillError("raw-trajectory memory needs at least one successful trajectory")
        self.embedder = embedder
        self.threshold = threshold_for(embedder, self.cfg.threshold)
        self.texts = [memory_block(t, max_obs_chars) for t in self.memory]
        cats = categories_of(self.memory)
        self.categories = [cats[t.id] for t in self.memory]
        vecs = np.asarray(embedder.embed([t.task_description for t in self.memory]), dtype=np.float32)
        self.matrix = normalize_rows(vecs)
        # ties broken by trajectory id, as skills are by skill id
        order = sorted(range(len(self.memory)), key=lambda i: self.memory[i].id)
        self._id_rank = np.empty(len(order), dtype=np.int64)
        self._id_rank[order] = np.arange(len(order))

    def task_category(self, task: str, category: str | None) -> str | None:
        if category is None:
            return category_from_task(task, known=set(self.categories))
        try:
            return normalize_category(category)
        except KrillError:
            return None

    def retrieve(self, task_description: str, category: str | None = None) -> Retrieved:
        """The top-K memories of the task's category (all memories if it has none) with cosine > δ."""
        cat = self.task_category(task_description, category)
        rows = np.array([i for i, c in enumerate(self.categories) if c == cat], dtype=np.int64)
        if rows.size == 0:
            rows, cat = np.arange(len(self.memory)), None
        query = normalize_rows(np.asarray(self.embedder.embed([task_description]), dtype=np.float32))[0]
        scores = self.matrix[rows] @ query
        idx = top_k_indices(scores, self.cfg.top_k, self.threshold, self._id_rank[rows])
        memories = [(self.texts[rows[i]], float(scores[i])) for i in idx]
        return Retrieved(mode="memory", category=cat, threshold=self.threshold, memories=memories)


def build_memory_retriever(
    trajectories: list[Trajectory], cfg: KrillConfig, embedder: Embedder | None = None
) -> MemoryRetriever:
    """The memory baseline's retriever over `trajectories`, with the config's embedder, K and δ."""
    if embedder is None:
        from krill.models import build_embedder

        embedder = build_embedder(cfg)
    return MemoryRetriever(trajectories, embedder, cfg.skill_retrieval, cfg.distill.max_observation_chars)
