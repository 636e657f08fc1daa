"""Skill retrieval (SkillRL §3.2): every general skill + the top-K task-specific skills of the task's category.

    S_ret = General ∪ TopK({s ∈ S_k : cos(e_d, e_s) > δ}, K)        (paper: K = 6, δ = 0.4)

δ depends on the embedder: all-MiniLM-L6-v2 scores a task against an LLM-written skill of its own
category at about 0.1–0.4, so the paper's 0.4 (set for the paper's embedder) drops nearly all of
them. With `skill_retrieval.threshold` unset, δ is the embedding model's calibrated value
(`CALIBRATED_THRESHOLDS`: the median cosine between a task and a skill of *another* category, from
benchmarks/calibrate_threshold.py), and the paper's 0.4 for models not calibrated here. The
category S_k is the given one, else inferred from the task (ALFWorld wording or WebShop product
words, `krill.categories.category_from_task`). Common mistakes are ranked: the category's own
first, each group by similarity to the task.

Each skill is embedded once (kept in the bank's `embedding` field, so a saved bank is never
re-embedded) into ONE L2-normalised matrix per bank; a query is one matrix-vector product and a
numpy `argpartition` (faster than faiss below ~100k rows). The official code's "template" mode (all
skills of the category, no similarity) is kept as `mode="template"`.

>>> r = retrieve(bank, "heat some potato and put it in the fridge")      # doctest: +SKIP
>>> [s.name for s in r.general], [(s.name, round(x, 2)) for s, x in r.specific]   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from krill.categories import category_from_task, normalize_category
from krill.errors import KrillError
from krill.models.embedder import normalize_rows
from krill.schema import CommonMistake, Skill, SkillBank
from krill.skills.bank_ops import embed_skills

if TYPE_CHECKING:
    from krill.config import KrillConfig, RetrievalConfig
    from krill.models.base import Embedder


# δ per embedding model (Embedder.name), from `python benchmarks/calibrate_threshold.py`: the median
# cosine between a task and a skill of another category (MiniLM: own category median 0.25, p10 0.09).
CALIBRATED_THRESHOLDS: dict[str, float] = {"all-MiniLM-L6-v2": 0.04, "hash-64": 0.07}
PAPER_THRESHOLD = 0.4  # SkillRL's δ, for the embedding model it was set with


def threshold_for(embedder: Embedder | None, configured: float | None = None) -> float:
    """δ: the configured value, else the embedder's calibrated one, else the paper's 0.4."""
    if configured is not None:
        return configured
    return CALIBRATED_THRESHOLDS.get(getattr(embedder, "name", ""), PAPER_THRESHOLD)


@dataclass
class Retrieved:
    """What the agent sees for one task: general skills, scored task skills, common mistakes
    (or, for the raw-trajectory baseline, `memories`: compact trajectory texts with their scores).

    `left_out` names the searched skills that did not make it, with their score and why
    ("below threshold" or "beyond top_k"), so a user can see what δ and K cost.
    """

    general: list[Skill] = field(default_factory=list)
    specific: list[tuple[Skill, float]] = field(default_factory=list)
    mistakes: list[CommonMistake] = field(default_factory=list)
    mode: str = "similarity"
    category: str | None = None
    threshold: float | None = None
    left_out: list[tuple[Skill, float, str]] = field(default_factory=list)
    mistake_scores: list[float] = field(default_factory=list)
    memories: list[tuple[str, float]] = field(default_factory=list)  # raw trajectories (`skills.memory`)

    @property
    def skills(self) -> list[Skill]:
        return [*self.general, *(s for s, _ in self.specific)]

    def skill_ids(self) -> list[str]:
        return [s.id for s in self.skills]

    def __len__(self) -> int:
        return len(self.general) + len(self.specific) + len(self.memories)


class Retriever:
    """Embeds a bank once and answers `retrieve(task, category)` queries against it."""

    def __init__(self, bank: SkillBank, embedder: Embedder | None, rcfg: RetrievalConfig | None = None):
        from krill.config import RetrievalConfig

        self.bank = bank
        self.embedder = embedder
        self.cfg = rcfg or RetrievalConfig()
        self._specific: list[Skill] = []
        # Skills are stored category by category, so each category is a contiguous row range of the
        # matrix: slicing it is a view (fancy indexing would copy the rows on every query).
        self._cat_index: dict[str, slice] = {}
        for cat, skills in bank.task_specific_skills.items():
            start = len(self._specific)
            self._specific.extend(skills)
            self._cat_index[cat] = slice(start, len(self._specific))
        self._all_index = slice(0, len(self._specific))
        # Tie-break key: rank of each skill id in sorted order, so "score desc, then id" is a lexsort.
        order = sorted(range(len(self._specific)), key=lambda i: self._specific[i].id)
        self._id_rank = np.empty(len(self._specific), dtype=np.int64)
        self._id_rank[order] = np.arange(len(order))
        self.matrix = self._embed_bank() if self.cfg.mode == "similarity" else None
        self.threshold = threshold_for(embedder, self.cfg.threshold)
        self._general_matrix: np.ndarray | None = None  # only with max_general: embedded on first use
        self._mistake_vecs: dict[str, np.ndarray] = {}  # mistake_id → normalised embedding

    # -- setup -----------------------------------------------------------------------------------
    def _embed_bank(self) -> np.ndarray:
        """One (n, d) float32 matrix of normalised skill embeddings; missing ones are embedded and stored."""
        if not self._specific:
            return np.zeros((0, 1), dtype=np.float32)
        if self.embedder is None:
            raise KrillError("similarity retrieval needs an embedder (or set skill_retrieval.mode=template)")
        mat = embed_skills(self._specific, self.embedder)  # missing ones are embedded and stored
        # Column-major (d contiguous per dimension): BLAS's transposed mat-vec streams it faster than
        # row-major (one core, 10k×384: ~0.9 vs ~1.5 ms), and a row range is still a view.
        return np.asfortranarray(mat)

    # -- queries ---------------------------------------------------------------------------------
    def task_category(self, task: str, category: str | None) -> str | None:
        """The task's category: the given one (any spelling), else inferred from the wording; None if unknown."""
        if category is None:
            known = {*self._cat_index, *(m.category for m in self.bank.common_mistakes if m.category)}
            return category_from_task(task, known=known or None)
        try:
            return normalize_category(category)
        except KrillError:
            return None

    def resolve_category(self, task: str, category: str | None) -> str | None:
        """The bank category to search: the task's, when the bank has skills for it; None = all categories."""
        cat = self.task_category(task, category)
        return cat if cat in self._cat_index else None

    def retrieve(self, task_description: str, category: str | None = None) -> Retrieved:
        """General skills + top-K task skills (cosine > δ) of the category, + its mistakes ranked."""
        named = self.task_category(task_description, category)
        cat = named if named in self._cat_index else None
        rows = self._cat_index[cat] if cat is not None else self._all_index
        out = Retrieved(general=self._general_for(task_description), mode=self.cfg.mode, category=cat)
        if self.cfg.mode == "template":
            out.mistakes = self.bank.mistakes_for(named)[: self.cfg.max_mistakes]
            out.specific = [(s, 1.0) for s in self._specific[rows]]
            return out
        query = self.embed_query(task_description) if self.embedder is not None else None
        out.mistakes, out.mistake_scores = self._mistakes_for(named, query)
        out.threshold = self.threshold
        if rows.stop == rows.start or query is None:
            return out
        scores = self.matrix[rows] @ query  # [n_rows] cosines (both sides normalised)
        idx = top_k_indices(scores, self.cfg.top_k, self.threshold, self._id_rank[rows])
        out.specific = [(self._specific[rows.start + i], float(scores[i])) for i in idx]
        chosen = set(idx.tolist())
        out.left_out = sorted(
            ((self._specific[rows.start + i], float(x), "below threshold" if x <= self.threshold else "beyond top_k")
             for i, x in enumerate(scores) if i not in chosen),
            key=lambda t: -t[1],
        )  # fmt: skip
        return out

    def _mistakes_for(
        self, cat: str | None, query: np.ndarray | None
    ) -> tuple[list[CommonMistake], list[float]]:
        """The category's mistakes, then the general ones, each group by similarity to the task."""
        mistakes = self.bank.mistakes_for(cat)
        if query is None or not mistakes or self.cfg.max_mistakes == 0:
            return mistakes[: self.cfg.max_mistakes], []
        todo = [m for m in mistakes if m.mistake_id not in self._mistake_vecs]
        if todo:
            vecs = normalize_rows(
                np.asarray(self.embedder.embed([mistake_text(m) for m in todo]), dtype=np.float32)
            )
            self._mistake_vecs.update(zip((m.mistake_id for m in todo), vecs, strict=True))
        scores = [float(self._mistake_vecs[m.mistake_id] @ query) for m in mistakes]
        order = sorted(range(len(mistakes)), key=lambda i: (mistakes[i].category != cat, -scores[i]))
        order = order[: self.cfg.max_mistakes]
        return [mistakes[i] for i in order], [scores[i] for i in order]

    def _general_for(self, task: str) -> list[Skill]:
        """Every general skill (the paper), or the `max_general` closest to the task (short CPU prompts)."""
        general, k = list(self.bank.general_skills), self.cfg.max_general
        if k is None or len(general) <= k:
            return general
        if self.cfg.mode == "template" or self.embedder is None:
            return general[:k]
        if self._general_matrix is None:
            self._general_matrix = embed_skills(general, self.embedder)
        scores = self._general_matrix @ self.embed_query(task)
        return [general[i] for i in sorted(np.argsort(-scores, kind="stable")[:k])]  # bank order kept

    def embed_query(self, text: str) -> np.ndarray:
        vec = np.asarray(self.embedder.embed([text]), dtype=np.float32)[0]
        return normalize_rows(vec)[0]


def mistake_text(m: CommonMistake) -> str:
    """What a mistake is embedded as: what goes wrong and how to avoid it."""
    return f"{m.description} {m.how_to_avoid}".strip()


def build_retriever(
    bank: SkillBank | None, cfg: KrillConfig, embedder: Embedder | None = None
) -> Retriever | None:
    """The one way krill builds a retriever (prompts, SFT demos, RL, evaluation, evolution, compression).

    None when there is no bank; the embedder comes from config unless given (none in template mode).
    """
    if bank is None:
        return None
    if embedder is None and cfg.skill_retrieval.mode == "similarity":
        from krill.models import build_embedder

        embedder = build_embedder(cfg)
    return Retriever(bank, embedder, cfg.skill_retrieval)


def top_k_indices(scores: np.ndarray, k: int, threshold: float, tie_rank: np.ndarray) -> np.ndarray:
    """Indices of the ≤k scores above `threshold`, ordered by score desc then `tie_rank` asc.

    One O(n) partition finds the k-th largest score; only scores ≥ it (ties included, so the
    tie-break stays exact) and above the threshold are sorted.
    """
    n = len(scores)
    kth = np.partition(scores, n - k)[n - k] if 0 < k < n else -np.inf
    cand = np.flatnonzero(scores >= kth) if kth > threshold else np.flatnonzero(scores > threshold)
    order = np.lexsort((tie_rank[cand], -scores[cand]))
    return cand[order][:k]


def retrieve_naive(
    bank: SkillBank, query: np.ndarray, category: str | None, top_k: int, threshold: float
) -> list[tuple[Skill, float]]:
    """The same top-K selection as a plain Python loop (reference for tests and the benchmark)."""
    skills = bank.skills_for(category) if category in bank.task_specific_skills else bank.all_skills()
    scored = []
    for s in skills:
        if s.is_general:
            continue
        e = s.embedding
        norm = sum(x * x for x in e) ** 0.5 or 1.0
        score = sum(a * b for a, b in zip(e, query, strict=True)) / norm
        if score > threshold:
            scored.append((s, score))
    scored.sort(key=lambda t: (-t[1], t[0].id))
    return scored[:top_k]


def retrieve(
    bank: SkillBank,
    task: str,
    *,
    category: str | None = None,
    embedder: Embedder | None = None,
    cfg: KrillConfig | RetrievalConfig | None = None,
) -> Retrieved:
    """One-call front door: build a Retriever (default embedder from config) and query it once."""
    from krill.config import KrillConfig, RetrievalConfig

    kcfg = cfg if isinstance(cfg, KrillConfig) else None
    rcfg = cfg if isinstance(cfg, RetrievalConfig) else (kcfg.skill_retrieval if kcfg else RetrievalConfig())
    if embedder is None and rcfg.mode == "similarity":
        from krill.models import build_embedder

        embedder = build_embedder(kcfg or KrillConfig())
    return Retriever(bank, embedder, rcfg).retrieve(task, category)
