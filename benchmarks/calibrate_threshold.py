"""Calibrate the retrieval threshold δ for an embedder: how similar is a task to its own category's
skills, and to the other categories' skills?

    python benchmarks/calibrate_threshold.py                   # the embedded all-MiniLM-L6-v2
    KRILL_EMBEDDER=hash python benchmarks/calibrate_threshold.py

Tasks come from krill's generated ALFWorld games and WebShop goals (20 per category); skills from
`benchmarks/data/llm_style_bank.json`, a bank in the official SkillRL style (abstract, LLM-like
wording). The suggested δ is the median cosine between a task and a skill of ANOTHER category: a
retrieved skill must look more related to the task than a typical unrelated one does. That rule
gives every embedder a threshold with the same meaning; krill stores the result per embedding model
in `krill.skills.retrieval.CALIBRATED_THRESHOLDS`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def tasks_by_category(per_category: int) -> dict[str, list[str]]:
    from krill.envs.alfworld.tasks import sample_game
    from krill.envs.webshop.goals import get_goals

    out: dict[str, list[str]] = {}
    for i in range(per_category * 6 * 3):
        game = sample_game("train", i, 0)
        if len(out.setdefault(game.category, [])) < per_category:
            out[game.category].append(game.description)
    for goal in get_goals(2000, 0, 500)["train"]:
        if len(out.setdefault(goal.category, [])) < per_category:
            out[goal.category].append(goal.instruction)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", default=str(ROOT / "benchmarks" / "data" / "llm_style_bank.json"))
    ap.add_argument("--per-category", type=int, default=20)
    args = ap.parse_args()

    from krill.config import KrillConfig
    from krill.formats.banks import load_bank
    from krill.models import build_embedder
    from krill.models.embedder import normalize_rows
    from krill.skills.bank_ops import embed_skills

    embedder = build_embedder(KrillConfig())
    bank = load_bank(args.bank)
    tasks = tasks_by_category(args.per_category)
    cats = [c for c in tasks if bank.task_specific_skills.get(c)]
    mats = {c: embed_skills(bank.task_specific_skills[c], embedder) for c in cats}
    own_scores: dict[str, np.ndarray] = {}
    other: list[float] = []
    for cat in cats:
        q = normalize_rows(np.asarray(embedder.embed(tasks[cat]), dtype=np.float32))
        own_scores[cat] = mats[cat] @ q.T  # [skills, tasks]
        other += [float(x) for c in cats if c != cat for x in (mats[c] @ q.T).ravel()]
    delta = round(float(np.median(other)), 2)
    own_all = np.concatenate([s.ravel() for s in own_scores.values()])
    print(
        f"embedder {embedder.name}; bank {Path(args.bank).name}; {len(cats)} categories x {args.per_category} tasks"
    )
    print(f"own-category cosine   p10 {np.percentile(own_all, 10):.3f}  median {np.median(own_all):.3f}  "
          f"p90 {np.percentile(own_all, 90):.3f}")  # fmt: skip
    print(f"other-category cosine p10 {np.percentile(other, 10):.3f}  median {np.median(other):.3f}  "
          f"p90 {np.percentile(other, 90):.3f}")  # fmt: skip
    print(f"suggested delta (median other-category cosine): {delta}")
    print(f"{'category':<14} {'tasks with >=1 own skill above delta':>38} {'... above 0.4 (paper)':>24}")
    for cat, s in own_scores.items():
        at_delta = int((s.max(axis=0) > delta).sum())
        at_paper = int((s.max(axis=0) > 0.4).sum())
        print(f"{cat:<14} {at_delta:>32}/{s.shape[1]} {at_paper:>21}/{s.shape[1]}")


if __name__ == "__main__":
    main()
