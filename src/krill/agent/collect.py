"""`krill collect` core: roll out a policy over N episodes and stream every trajectory to disk.

Successes and failures are both kept. Each finished episode is appended (fsync'd) as one line the
moment it ends, so an interrupted run loses at most the episodes in flight; `resume=True` reads what
is there and runs only the missing episode indices. Episode i always plays the same task
(`task_plan(seed)`), which is what makes "the missing indices" well defined.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from krill.agent.actors import make_actor
from krill.agent.prompts import shows_skills
from krill.agent.rollout import run_episodes
from krill.config import KrillConfig
from krill.errors import KrillError
from krill.formats.trajectories import TrajectoryWriter
from krill.io import MAX_TRAJECTORY_BYTES, read_jsonl
from krill.schema import Trajectory

if TYPE_CHECKING:
    from krill.envs.base import Pool

DEFAULT_OUT = "data/trajectories.json"  # the original krill's default path (JSON array)


@dataclass
class CollectOptions:
    episodes: int = 64
    policy: str = "expert"
    split: str = "train"
    out: str = DEFAULT_OUT
    resume: bool = False
    seed: int = 0
    skill_bank: str | None = None
    max_steps: int | None = None


@dataclass
class CollectResult:
    out: Path
    trajectories: list[Trajectory] = field(default_factory=list)  # new and resumed, by episode index
    ran: int = 0
    resumed: int = 0
    policy: str = ""
    skills: int = 0  # size of the bank the policy retrieved from (0 = no skills)


def task_plan(task_ids: list[str], episodes: int, seed: int) -> list[str]:
    """Episode i → task: a seeded shuffle of the split, cycled when episodes > tasks."""
    if not task_ids:
        raise KrillError("the environment split has no tasks")
    order = list(task_ids)
    random.Random(seed).shuffle(order)
    return [order[i % len(order)] for i in range(episodes)]


def collect(
    cfg: KrillConfig,
    opts: CollectOptions,
    *,
    pool: Pool | None = None,
    actor: Any = None,
    progress: Any = None,
) -> CollectResult:
    """Run (or resume) `opts.episodes` episodes and write them to `opts.out`; returns all trajectories.

    The actor is `opts.policy`'s (`make_actor`), decoding at `cfg.sampling("collect")`, unless given."""
    if opts.episodes < 1:
        raise KrillError(f"--episodes must be at least 1, got {opts.episodes}")
    from krill.runlock import run_lock
    from krill.runrecord import record_config

    with run_lock(opts.out, "collect"):
        record_config(cfg, opts.out, check=opts.resume)
        return _collect(cfg, opts, pool, actor, progress)


def _collect(
    cfg: KrillConfig, opts: CollectOptions, pool: Pool | None, actor: Any, progress: Any
) -> CollectResult:
    bank = None
    if opts.policy in ("local", "openai") and shows_skills(cfg, opts.skill_bank):
        from krill.formats.banks import load_bank

        bank = load_bank(opts.skill_bank)
    actor = actor or make_actor(opts.policy, cfg, bank=bank, sampling=cfg.sampling("collect"), seed=opts.seed)
    writer = TrajectoryWriter(opts.out, resume=opts.resume)
    previous = _previous(writer.log, cfg, opts) if opts.resume else {}
    own_pool = pool is None
    new: list[Trajectory] = []
    try:
        if own_pool:
            from krill.envs.pool import make_pool

            batch = cfg.model.policy.batch_size if opts.policy in ("local", "openai") else 8
            pool = make_pool(cfg, opts.split, max(1, min(batch, opts.episodes - len(previous))))
        plan = task_plan(pool.task_ids(), opts.episodes, opts.seed)
        todo = [i for i in range(opts.episodes) if i not in previous]
        if progress is not None:
            progress.advance(len(previous))
        if todo:
            new = run_episodes(
                actor, pool, [plan[i] for i in todo], max_steps=opts.max_steps, seed=opts.seed,
                split=opts.split, indices=todo, on_episode=writer.write, progress=progress,
            )  # fmt: skip
    finally:
        if own_pool and pool is not None:
            pool.close()
    writer.close()
    every = {**previous, **{t.metadata["episode_index"]: t for t in new}}
    return CollectResult(
        out=Path(opts.out),
        trajectories=[every[i] for i in sorted(every)],
        ran=len(new),
        resumed=len(previous),
        policy=getattr(actor, "name", opts.policy),
        skills=len(bank) if bank is not None else 0,
    )


def _previous(log: Path, cfg: KrillConfig, opts: CollectOptions) -> dict[int, Trajectory]:
    """Episodes already on disk (by episode index), checked to belong to this same run."""
    if not log.exists():
        return {}
    out: dict[int, Trajectory] = {}
    for n, row in enumerate(read_jsonl(log, repair_tail=True, max_bytes=MAX_TRAJECTORY_BYTES), 1):
        traj = Trajectory.model_validate(row)
        md = traj.metadata
        if md.get("seed") != opts.seed or md.get("split") != opts.split:
            raise KrillError(
                f"line {n} was collected with seed {md.get('seed')} / split {md.get('split')}; "
                f"resume with the same --seed and --split (or drop --resume to start over)",
                path=log,
            )
        idx = md.get("episode_index")
        if isinstance(idx, int) and 0 <= idx < opts.episodes:
            out[idx] = traj
    return out


def summarize(trajs: list[Trajectory]) -> list[dict[str, Any]]:
    """Per-category rows (episodes, success rate, mean steps, invalid-action rate) + an 'all' row."""
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        groups[t.task_category or "unknown"].append(t)
    rows = [_row(cat, groups[cat]) for cat in sorted(groups)]
    if trajs:
        rows.append(_row("all", trajs))
    return rows


def _row(name: str, ts: list[Trajectory]) -> dict[str, Any]:
    steps = sum(len(t.steps) for t in ts)
    return {
        "category": name,
        "episodes": len(ts),
        "success_rate": sum(t.success for t in ts) / len(ts),
        "mean_steps": steps / len(ts),
        "invalid_rate": sum(t.num_invalid for t in ts) / steps if steps else 0.0,
    }
