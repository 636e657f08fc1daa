"""`evaluate()`: run a policy over a split (or N stratified episodes) and report per-category results.

Greedy by default and seeded, so the same command gives the same numbers. Trajectories are appended
as they finish (an interrupted eval resumes) and kept next to the result JSON for inspection.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.evaluate.stats import GroupStats, summarize
from krill.io import read_json, write_json
from krill.schema import SkillBank, Trajectory
from krill.skills.evolved import evolved_skill_ids

if TYPE_CHECKING:
    from krill.envs.base import Pool

EVAL_FORMAT = "krill-eval/1"


@dataclass
class EvalResult:
    env: str
    split: str
    policy: str
    results: dict[str, GroupStats]
    trajectories_path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": EVAL_FORMAT,
            "env": self.env,
            "split": self.split,
            "policy": self.policy,
            "results": {k: v.to_dict() for k, v in self.results.items()},
            "trajectories": self.trajectories_path,
            **self.meta,
        }


def stratified_tasks(
    task_ids: list[str], categories: dict[str, str | None], n: int | None, seed: int
) -> list[str]:
    """Pick n tasks round-robin over categories (seeded), so every category is represented.

    With n=None, every task of the split in a stable order.
    """
    if n is None or n >= len(task_ids):
        return list(task_ids)
    rng = random.Random(seed)
    by_cat: dict[str, list[str]] = defaultdict(list)
    for tid in task_ids:
        by_cat[categories.get(tid) or "?"].append(tid)
    queues = []
    for cat in sorted(by_cat):
        ids = list(by_cat[cat])
        rng.shuffle(ids)
        queues.append(ids)
    picked: list[str] = []
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop())
    return picked


def task_categories(env: Any, task_ids: list[str]) -> dict[str, str | None]:
    """Category per task id, from the env when it knows it without a reset."""
    lookup = getattr(env, "task_category_of", None)
    if lookup is None:
        return {}
    return {tid: lookup(tid) for tid in task_ids}


def evaluate(
    cfg: KrillConfig,
    *,
    policy: str,
    bank: SkillBank | None,
    out: str | Path,
    split: str | None = None,
    episodes: int | None = None,
    use_skills: bool = True,
    actor: Any = None,
    pool: Pool | None = None,
    resume: bool = True,
    retriever: Any = None,
) -> EvalResult:
    """Evaluate `policy` on `cfg.env.name`/`split` at `cfg.sampling("eval")`; writes `out` (JSON) and
    `out`'s trajectories JSONL. `actor` replaces the one built from `policy` (validation passes its
    own), `pool` the env pool built from the config, `retriever` the one built from `bank` (e.g. the
    raw-trajectory memory, `krill.skills.memory`); `cfg` is not changed."""
    from krill.agent.actors import make_actor
    from krill.envs.pool import make_pool

    split = split or cfg.eval.split
    out = Path(out)
    sampling = cfg.sampling("eval")
    use_skills = use_skills and (bank is not None or retriever is not None) and cfg.agent.use_skills
    tasks = _eval_tasks(cfg, split, episodes, pool)
    traj_path = out.with_name(out.stem + ".trajectories.jsonl")
    actor = actor or make_actor(
        policy,
        cfg,
        bank=bank,
        sampling=sampling,
        seed=cfg.eval.seed,
        use_skills=use_skills,
        retriever=retriever,
    )
    start = time.perf_counter()
    own_pool = pool is None
    pool = pool or make_pool(cfg, split, min(len(tasks), cfg.model.policy.batch_size) or 1)
    try:
        trajs = _play(actor, pool, tasks, traj_path, cfg, split, f"eval {policy}", resume)
    finally:
        if own_pool:
            pool.close()
    result = EvalResult(
        env=cfg.env.name,
        split=split,
        policy=policy,
        results=summarize(trajs),
        trajectories_path=str(traj_path),
        meta={
            "model": cfg.model.policy.model if policy in ("local", "openai") else None,
            "use_skills": use_skills,
            "memory": use_skills and retriever is not None and bank is None,  # raw trajectories, not skills
            "episodes": len(trajs),
            "seed": cfg.eval.seed,
            # what the actor decoded with (a caller's own actor reports its own)
            **asdict(getattr(actor, "sampling", None) or sampling),
            "wall_time_s": round(time.perf_counter() - start, 2),
            "skills": skill_usage(trajs, bank),
        },
    )
    write_json(out, result.to_dict())
    return result


def skill_usage(trajs: list[Trajectory], bank: SkillBank | None) -> dict[str, Any]:
    """Which skills the episodes' prompts carried (`metadata["skills_used"]`), and how many episodes
    carried one that evolution added to `bank` (`evolved_share`, of all episodes)."""
    evolved = evolved_skill_ids(bank) if bank is not None else set()
    used = [set(t.metadata.get("skills_used") or []) for t in trajs]
    distinct = set().union(*used)
    with_evolved = sum(1 for u in used if u & evolved)
    return {
        "episodes": len(trajs),
        "with_skills": sum(1 for u in used if u),
        "distinct_used": len(distinct),
        "evolved_in_bank": len(evolved),  # 0: no evolved skill could be retrieved (no bank, or none evolved)
        "with_evolved": with_evolved,
        "evolved_share": with_evolved / len(trajs) if trajs else 0.0,
        "evolved_used": sorted(distinct & evolved),
    }


def _eval_tasks(cfg: KrillConfig, split: str, episodes: int | None, pool: Pool | None) -> list[str]:
    """The stratified task sample (every task when `episodes` is None), from the pool or a probe env."""
    from krill.envs.base import make_env

    if pool is not None:
        return stratified_tasks(pool.task_ids(), {}, episodes, cfg.eval.seed)
    probe = make_env(cfg.env.name, split=split, cfg=cfg)
    try:
        all_ids = probe.task_ids()
        return stratified_tasks(all_ids, task_categories(probe, all_ids), episodes, cfg.eval.seed)
    finally:
        probe.close()


def _play(
    actor: Any,
    pool: Pool,
    tasks: list[str],
    traj_path: Path,
    cfg: KrillConfig,
    split: str,
    label: str,
    resume: bool,
) -> list[Trajectory]:
    """Play the tasks not yet in `traj_path` (appending each episode as it ends); all tasks' trajectories."""
    from krill.agent.rollout import run_episodes
    from krill.formats.trajectories import TrajectoryWriter, load_trajectories
    from krill.progress import progress_bar

    writer = TrajectoryWriter(traj_path, resume=resume)
    done = writer.done_ids()
    todo = [t for t in tasks if _episode_id(t) not in done]
    try:
        with progress_bar(label, len(tasks)) as bar:
            bar.advance(len(tasks) - len(todo))

            def on_episode(t: Trajectory) -> None:
                t.id = _episode_id(t.metadata.get("task_id", t.id))
                writer.write(t)
                bar.advance()

            if todo:
                run_episodes(actor, pool, todo, cfg, seed=cfg.eval.seed, split=split, on_episode=on_episode)
    finally:
        writer.close()
    wanted = {_episode_id(t) for t in tasks}
    return [t for t in load_trajectories(traj_path) if t.id in wanted]


def _episode_id(task_id: str) -> str:
    return f"eval::{task_id}" if not str(task_id).startswith("eval::") else str(task_id)


def load_eval(path: str | Path) -> dict[str, Any]:
    """Read an eval JSON written by `evaluate`; another format is a clear error."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != EVAL_FORMAT or "results" not in data:
        raise KrillError(f'not a krill eval result (expected "format": "{EVAL_FORMAT}")', path=path)
    _check_results(data["results"], path)
    if "skills" in data:  # older results have no `skills` block: nothing to check
        _check_skills(data["skills"], path)
    return data


_STAT_FIELDS = tuple(f.name for f in fields(GroupStats))


def _check_results(results: Any, path: str | Path) -> None:
    """`results` maps each category to the numbers of a `GroupStats`: all that compare/report read."""
    _check_type(results, dict, "an object", path, "results")
    for cat, stats in results.items():
        _check_type(stats, dict, "an object", path, f"results.{cat}")
        for name in _STAT_FIELDS:
            if name not in stats:
                raise KrillError("missing field", path=path, where=f"results.{cat}.{name}")
            _check_type(stats[name], int | float, "a finite number", path, f"results.{cat}.{name}")


_SKILL_COUNTS = (
    "episodes",
    "with_skills",
    "distinct_used",
    "evolved_in_bank",
    "with_evolved",
    "evolved_share",
)


def _check_skills(skills: Any, path: str | Path) -> None:
    """The `skills` block holds the counts of `skill_usage` (what the report reads) and a list of ids."""
    _check_type(skills, dict, "an object", path, "skills")
    for name in _SKILL_COUNTS:
        if name not in skills:
            raise KrillError("missing field", path=path, where=f"skills.{name}")
        _check_type(skills[name], int | float, "a finite number", path, f"skills.{name}")
    _check_type(skills.get("evolved_used", []), list, "a list", path, "skills.evolved_used")


def _check_type(value: Any, kind: Any, expected: str, path: str | Path, where: str) -> None:
    from krill.models.jsonschema_lite import _json_type

    non_finite = isinstance(value, float) and not math.isfinite(value)
    if isinstance(value, kind) and not isinstance(value, bool) and not non_finite:
        return
    got = repr(value) if isinstance(value, float) else _json_type(value)
    raise KrillError(f"expected {expected}, got {got}", path=path, where=where)
