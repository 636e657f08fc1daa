"""The rollout engine: B episodes at once, one batched actor call per step, slots refilled as episodes end.

verl-agent style lockstep with an active mask: every step, all live episodes get their actions from
ONE `actor.act` call (one batched generate for an LLM), the pool steps exactly those envs, finished
episodes become `Trajectory`s and their slots take the next task. Invalid actions are sent to the
env as-is (it answers "Nothing happens.") and recorded with `valid=False`.

GRPO groups: `task_ids` may repeat a task G times (`[t0]*G + [t1]*G ...`); every copy is its own
episode in its own env slot, and with a sampling actor (`LLMActor` at `cfg.sampling("rollout")`) each copy draws its
own tokens, so the G trajectories are independent samples of the same task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from krill.agent.prompts import Turn
from krill.envs.base import Pool
from krill.schema import Step, Trajectory, new_id
from krill.skills.retrieval import Retrieved


@dataclass
class Episode:
    """One live episode in a pool slot (what actors and prompts see)."""

    index: int  # position in the run's task list
    task_id: str
    slot: int
    task: str = ""
    category: str | None = None
    observation: str = ""
    initial_observation: str = ""
    admissible: list[str] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)  # every observation and the reply to it (conversation)
    steps: list[Step] = field(default_factory=list)
    env_name: str = ""
    total_reward: float = 0.0
    won: bool = False
    score: float | None = None
    progress: float | None = None  # the env's last info["progress"] (ALFWorld subgoals), if it reports one
    tokens: int = 0
    error: str | None = None
    retrieved: Retrieved | None = None
    skills_used: dict[str, None] = field(default_factory=dict)  # ordered set
    scratch: dict[str, Any] = field(default_factory=dict)  # actor-private state (e.g. an RNG)


def run_episodes(
    actor: Any,
    pool: Pool,
    task_ids: Sequence[str],
    *,
    max_steps: int | None = None,
    seed: int = 0,
    split: str = "train",
    indices: Sequence[int] | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
    progress: Any = None,
) -> list[Trajectory]:
    """Run one episode per entry of `task_ids` (repeats allowed), B = min(len, pool size) at a time.

    Returns trajectories in `task_ids` order. `indices` (default 0..n-1) label the episodes in
    metadata (`episode_index`) so a resumed collect knows which are done. `on_episode` gets each
    trajectory as soon as it ends; `progress` (a `krill.progress.Bar`) advances with a live success rate.
    """
    indices = list(range(len(task_ids))) if indices is None else list(indices)
    limit = max_steps or pool.max_steps
    queue = list(zip(indices, task_ids, strict=True))[::-1]  # pop() from the end = in order
    live: dict[int, Episode] = {}
    done: dict[int, Trajectory] = {}
    free = list(range(min(len(task_ids), len(pool))))[::-1]
    stats = {"wins": 0}

    def finish(ep: Episode) -> None:
        traj = to_trajectory(ep, actor, split=split, seed=seed)
        done[ep.index] = traj
        stats["wins"] += traj.success
        del live[ep.slot]
        free.append(ep.slot)
        if on_episode:
            on_episode(traj)
        if progress is not None:
            progress.advance()
            progress.status(f"succ {stats['wins'] / len(done):.2f}")

    while queue or live:
        for ep in _fill(pool, queue, free, live):
            finish(ep)  # the reset itself failed (info["error"]): recorded as a failed episode
        if not live:
            continue
        eps = [live[s] for s in sorted(live)]
        decisions = actor.act(eps, pool)
        results = pool.step([ep.slot for ep in eps], [d.action for d in decisions])
        for ep, dec, res in zip(eps, decisions, results, strict=True):
            if _record(ep, dec, res) or len(ep.steps) >= limit:
                finish(ep)
    return [done[i] for i in indices]


def _fill(pool: Pool, queue: list, free: list[int], live: dict[int, Episode]) -> list[Episode]:
    """Start queued episodes in free slots; returns those whose reset failed."""
    slots, starts, failed = [], [], []
    while queue and free:
        slots.append(free.pop())
        starts.append(queue.pop())
    if not slots:
        return failed
    for slot, (idx, tid), (obs, info) in zip(
        slots, starts, pool.reset(slots, [t for _, t in starts]), strict=True
    ):
        live[slot] = Episode(
            index=idx,
            task_id=str(info.get("task_id", tid)),
            slot=slot,
            task=info.get("task_description") or "",
            category=info.get("task_category"),
            observation=obs,
            initial_observation=obs,
            admissible=list(info.get("admissible_actions") or []),
            turns=[Turn(obs, list(info.get("admissible_actions") or []))],
            env_name=getattr(pool, "name", None) or info.get("environment") or "",
            error=str(info["error"]) if info.get("error") else None,
            progress=float(info["progress"]) if info.get("progress") is not None else None,
        )
        if live[slot].error:
            failed.append(live[slot])
    return failed


def _record(ep: Episode, dec: Any, res: tuple[str, float, bool, dict]) -> bool:
    """Append the step; returns True when the episode is over."""
    obs, reward, finished, info = res
    valid = bool(dec.valid) and bool(info.get("valid", True))
    step = Step(observation=ep.observation, action=dec.action, reward=float(reward), step_index=len(ep.steps),
                valid=valid, think=dec.think, **dec.extras)  # fmt: skip
    ep.steps.append(step)
    ep.history.append((ep.observation, dec.action))
    ep.turns[-1].reply = dec.extras.get("response", dec.action)  # the model's own words when it wrote them
    ep.total_reward += float(reward)
    ep.tokens += dec.tokens
    for sid in dec.extras.get("skills_used") or []:
        ep.skills_used[sid] = None
    ep.observation = obs
    ep.admissible = list(info.get("admissible_actions") or [])
    ep.turns.append(Turn(obs, ep.admissible))
    ep.won = bool(info.get("won", ep.won))
    if "score" in info:
        ep.score = float(info["score"])
    if info.get("progress") is not None:
        ep.progress = float(info["progress"])
    if info.get("error"):
        ep.error = str(info["error"])
        return True
    return bool(finished)


def to_trajectory(ep: Episode, actor: Any, *, split: str, seed: int) -> Trajectory:
    """Package a finished episode in the krill trajectory format."""
    meta: dict[str, Any] = {
        "environment": ep.env_name,
        "num_steps": len(ep.steps),
        "total_tokens": ep.tokens,
        "skills_used": list(ep.skills_used),
        "split": split,
        "policy": getattr(actor, "name", type(actor).__name__),
        "invalid_actions": sum(1 for s in ep.steps if s.valid is False),
        "task_id": ep.task_id,
        "episode_index": ep.index,
        "seed": seed,
    }
    if ep.score is not None:
        meta["score"] = ep.score
    if ep.progress is not None:
        meta["progress"] = ep.progress
    if ep.error:
        meta["error"] = ep.error
    return Trajectory(
        id=new_id(),
        task_description=ep.task,
        task_category=ep.category,
        steps=ep.steps,
        total_reward=ep.total_reward,
        success=ep.won,
        metadata=meta,
    )
