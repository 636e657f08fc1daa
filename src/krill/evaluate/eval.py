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
    from krill.runlock import run_lock
    from krill.runrecord import record_config

    with run_lock(out, "eval"):
        record_config(cfg, out, check=resume)
        return _evaluate(cfg, policy, bank, Path(out), split or cfg.eval.split, episodes, use_skills, actor, pool,
                         resume, retriever)  # fmt: skip


def _evaluate(
    cfg, policy, bank, out, split, episodes, use_skills, actor, pool, resume, retriever
) -> EvalResult:
    from krill.agent.actors import make_actor
    from krill.envs.pool import make_pool

    sampling = cfg.sampling("eval")
    from krill.agent.prompts import shows_skills

    # an LLM actor of the caller's (validation) shows skills exactly when it has a retriever
    if hasattr(actor, "retriever"):
        use_skills = actor.retriever is not None
    else:
        use_skills = shows_skills(cfg, bank, retriever, use_skills)
    tasks = _eval_tasks(cfg, split, episodes, pool)
    traj_path = trajectories_path(out)
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
            "provenance": provenance(cfg, bank if use_skills else None, split, pool.max_steps, policy)
            | {"tasks": len(trajs), "tasks_sha256": tasks_hash(trajs)},
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
                run_episodes(actor, pool, todo, seed=cfg.eval.seed, split=split, on_episode=on_episode)
    finally:
        writer.close()
    wanted = {_episode_id(t) for t in tasks}
    return [t for t in load_trajectories(traj_path) if t.id in wanted]


def provenance(
    cfg: KrillConfig, bank: SkillBank | None, split: str, max_steps: int, policy: str
) -> dict[str, Any]:
    """How a result was made, enough to tell two results apart and to rerun one: the policy (base
    model, adapter and the hash of its weights), the bank's content hash, what the prompt held, how it
    decoded, the step cap, split and seed, krill's version and a hash of the whole config."""
    import hashlib
    import json

    import krill

    pc, agent = cfg.model.policy, cfg.agent
    # the settings, not where files lie: the adapter is named by its own hash below
    public = json.dumps(cfg.override({"model.policy.adapter": None, "cache_dir": ""}).to_public_dict(),
                        sort_keys=True, default=str)  # fmt: skip
    return {
        "krill_version": krill.__version__,
        "config_sha256": hashlib.sha256(public.encode()).hexdigest()[:16],
        "policy": policy,
        "base_model": pc.model if policy in ("local", "openai") else None,
        "adapter": pc.adapter,
        "adapter_sha256": _file_hash(Path(pc.adapter) / "adapter_model.safetensors") if pc.adapter else None,
        "bank_sha256": bank_hash(bank) if bank else None,
        "bank_skills": len(bank) if bank else 0,
        "prompt": {
            "context": agent.context,
            "use_skills": bank is not None,
            "top_k": cfg.skill_retrieval.top_k,
            "restate_task": agent.restate_task,
            "show_admissible": agent.show_admissible,
        },  # fmt: skip
        "decoding": {
            "constrain_actions": agent.constrain_actions,
            "choice_score": agent.choice_score,
            "temperature": cfg.eval.temperature,
            "max_new_tokens": pc.max_new_tokens,
        },  # fmt: skip
        "env": cfg.env.name,
        "split": split,
        "max_steps": max_steps,
        "seed": cfg.eval.seed,
    }


def trajectories_path(out: str | Path) -> Path:
    """Where an eval result's episodes are written: `<name>.trajectories.jsonl` beside `<name>.json`."""
    out = Path(out)
    return out.with_name(out.stem + ".trajectories.jsonl")


def tasks_hash(trajs: list[Trajectory]) -> str:
    """A hash of which games were played (their task ids, in any order): results on other games are
    not comparable, and `eval --compare` and `krill ablate` say so."""
    import hashlib

    ids = sorted(str(t.metadata.get("task_id") or t.id) for t in trajs)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def bank_hash(bank: SkillBank) -> str:
    """A hash of what a bank can put in a prompt (each skill's id, name, principle, when-to-apply and
    category; the mistakes), not of its timestamps or provenance: equal banks hash equal."""
    import hashlib
    import json

    skills = sorted([s.id, s.name, s.principle, s.when_to_apply, str(s.category)] for s in bank.all_skills())
    mistakes = sorted(
        [m.description, m.why_it_happens, m.how_to_avoid, str(m.category)] for m in bank.common_mistakes
    )
    return hashlib.sha256(json.dumps([skills, mistakes]).encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str | None:
    import hashlib

    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def provenance_differences(results: list[dict[str, Any]]) -> list[str]:
    """What differs between results' provenance, as 'key: a | b' lines (the ones that change what a
    number means; a model's adapter and bank are expected to differ between a before and an after)."""
    keys = (
        "env",
        "split",
        "tasks_sha256",
        "max_steps",
        "seed",
        "base_model",
        "prompt",
        "decoding",
        "krill_version",
    )
    provs = [r.get("provenance") or {} for r in results]
    if not all(provs):
        return ["some results record no provenance (written by an older krill): they may not be comparable"]
    return [f"{k}: " + " | ".join(json_text(p.get(k)) for p in provs)
            for k in keys if len({json_text(p.get(k)) for p in provs}) > 1]  # fmt: skip


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)


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
        _check_ranges(stats, path, f"results.{cat}")


def _check_ranges(stats: dict[str, Any], path: str | Path, where: str) -> None:
    """Rates and their interval are shares (0..1, low ≤ rate ≤ high) and successes ≤ episodes: a file
    that says otherwise was edited by hand, and `eval --compare` must not print 750 %."""
    for name in ("success_rate", "ci_low", "ci_high"):
        if not 0.0 <= stats[name] <= 1.0:
            raise KrillError(
                f"must be between 0 and 1, got {stats[name]}", path=path, where=f"{where}.{name}"
            )
    if not stats["ci_low"] - 1e-9 <= stats["success_rate"] <= stats["ci_high"] + 1e-9:
        raise KrillError(
            "the success rate lies outside its interval", path=path, where=f"{where}.success_rate"
        )
    if not 0 <= stats["successes"] <= stats["episodes"]:
        raise KrillError("successes must be between 0 and episodes", path=path, where=f"{where}.successes")


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
