"""Embedding-based bank operations: dedup near-duplicates, add evolved skills if novel.

Merging and diffing two banks by id (no embeddings) is `krill.formats.bank_tools`.

Near-duplicates are skills whose embeddings have cosine ≥ a threshold (`distill.merge_threshold`,
0.9). Merging is greedy over skills sorted by support (most provenance first): each skill either
joins the first kept skill it is that close to (which gains its provenance) or is kept itself. So
the kept skills are pairwise below the threshold, and the text kept is the best-supported wording.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from krill.categories import normalize_category
from krill.formats.bank_tools import file_skill
from krill.models.embedder import normalize_rows
from krill.schema import GENERAL, CommonMistake, HistoryEntry, Provenance, Skill, SkillBank


def embedder_dim(embedder) -> int:
    dim = getattr(embedder, "dim", None)
    return dim if isinstance(dim, int) else int(np.asarray(embedder.embed(["dimension probe"])).shape[1])


def embed_skills(skills: Sequence[Skill], embedder, *, force: bool = False) -> np.ndarray:
    """(n, d) normalised embeddings of `skills`; missing ones (or ones from a model of another size)
    are computed with `embedder` and stored on the skill."""
    dim = embedder_dim(embedder) if skills and not force else 0
    todo = [s for s in skills if force or s.embedding is None or len(s.embedding) != dim]
    if todo:
        vecs = embedder.embed([s.text_for_embedding() for s in todo])
        for s, v in zip(todo, vecs, strict=True):
            s.embedding = [float(x) for x in v]
    if not skills:
        return np.zeros((0, 0), dtype=np.float32)
    return normalize_rows(np.asarray([s.embedding for s in skills], dtype=np.float32))


def union_provenance(a: list[Provenance], b: list[Provenance]) -> list[Provenance]:
    seen = {(p.trajectory_id, p.success) for p in a}
    return [*a, *(p for p in b if (p.trajectory_id, p.success) not in seen)]


def greedy_merge(items: list, mat: np.ndarray, threshold: float) -> tuple[list, np.ndarray, int]:
    """Cluster rows with cosine ≥ threshold; keep the best-supported item of each, union provenance."""
    if not items:
        return [], mat, 0
    order = sorted(range(len(items)), key=lambda i: (-len(items[i].provenance), i))
    kept: list[int] = []
    merged = 0
    for i in order:
        if kept:
            sims = mat[kept] @ mat[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                rep = items[kept[j]]
                rep.provenance = union_provenance(rep.provenance, items[i].provenance)
                _note_merge(rep, items[i])
                merged += 1
                continue
        kept.append(i)
    return [items[i] for i in kept], mat[kept], merged


def _note_merge(rep, other) -> None:
    """Remember which proposals were folded in (an extra field: older readers ignore it)."""
    extra = rep.__pydantic_extra__ if rep.__pydantic_extra__ is not None else {}
    ids = list(extra.get("merged_ids", []))
    oid = getattr(other, "id", None) or getattr(other, "mistake_id", None)
    ids.append(oid)
    ids.extend(x for x in (other.__pydantic_extra__ or {}).get("merged_ids", []) if x not in ids)
    extra["merged_ids"] = ids


def dedup_skills(skills: list[Skill], embedder, threshold: float) -> tuple[list[Skill], int]:
    mat = embed_skills(skills, embedder)
    kept, _, merged = greedy_merge(skills, mat, threshold)
    return kept, merged


def dedup_mistakes(
    mistakes: list[CommonMistake], embedder, threshold: float
) -> tuple[list[CommonMistake], int]:
    if not mistakes:
        return [], 0
    vecs = normalize_rows(embedder.embed([f"{m.description}. {m.how_to_avoid}" for m in mistakes]))
    kept, _, merged = greedy_merge(mistakes, vecs, threshold)
    return kept, merged


def rebuild(bank: SkillBank, skills: list[Skill], mistakes: list[CommonMistake] | None = None) -> SkillBank:
    """A bank holding `skills` (filed by category), keeping `bank`'s history for surviving ids."""
    out = SkillBank(current_cycle=bank.current_cycle, common_mistakes=list(bank.common_mistakes))
    if mistakes is not None:
        out.common_mistakes = mistakes
    for s in skills:
        file_skill(out, s)
    alive = {s.id for s in skills}
    out.history = [h for h in bank.history if h.skill_id in alive]
    have = {h.skill_id for h in out.history}
    out.history += [
        HistoryEntry(skill_id=s.id, evolution_cycle=bank.current_cycle) for s in skills if s.id not in have
    ]
    return out


def dedup_bank(bank: SkillBank, embedder, threshold: float) -> tuple[SkillBank, int]:
    """Merge near-duplicate skills (cosine ≥ threshold) of the whole bank; returns (new bank, n merged).

    A merged skill keeps the best-supported wording and the union of provenance; if its support then
    spans two or more categories it becomes general (the hierarchy rule).
    """
    kept, merged = dedup_skills([s.model_copy(deep=True) for s in bank.all_skills()], embedder, threshold)
    mistakes, m_merged = dedup_mistakes(
        [m.model_copy(deep=True) for m in bank.common_mistakes], embedder, threshold
    )
    return rebuild(bank, kept, mistakes), merged + m_merged


def add_if_novel(
    bank: SkillBank,
    skills: list[Skill],
    embedder,
    threshold: float,
    category: str | None = None,
    cycle: int | None = None,
) -> list[Skill]:
    """Evolution: add the skills that are not near-duplicates (cosine ≥ threshold) of existing or earlier ones.

    Each added skill is filed as a task-specific skill of `category` (when given), embedded, marked
    `source="evolution"`, and gets a history entry for `cycle` (default: bank.current_cycle + 1).
    The bank is mutated in place; the added skills are returned.
    """
    cycle = bank.current_cycle + 1 if cycle is None else cycle
    category = normalize_category(category) if category else None
    existing = bank.all_skills()
    mat = embed_skills(existing, embedder) if existing else None
    added: list[Skill] = []
    for s in skills:
        s = s.model_copy(deep=True, update={"category": category} if category else {})
        s.source = "evolution"
        vec = embed_skills([s], embedder, force=True)[0]
        if mat is not None and mat.size and float(np.max(mat @ vec)) >= threshold:
            continue
        if category and s.category == GENERAL:
            s.category = category
        bank.add(s, cycle=cycle)
        added.append(s)
        mat = vec[None, :] if mat is None or not mat.size else np.vstack([mat, vec[None, :]])
    return added
