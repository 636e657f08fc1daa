"""Guided GRPO groups (`rl.guidance`): expert help for a policy whose groups rarely win.

Outcome-only GRPO learns nothing from a group whose rollouts all got the same reward, and a small
policy that wins a game one time in ten sees almost only such groups. krill has an expert for every
game (ALFWorld's search expert, WebShop's goal-driven shopper), so a group can be given what it lacks:

- `prefix` (BREAD, arXiv:2506.17211; R3's reverse curriculum, arXiv:2402.05808): `rl.guided_rollouts`
  of each task's G rollouts replay the first k = round(f · n) actions of the expert's winning episode
  (n steps), then the policy takes over. The expert's steps stay in the chat as context and carry no
  gradient. The guided rollouts are their own advantage group (they share a start state), so the free
  steps never count as the policy's merit. f starts at `rl.guide_fraction` and drops by
  `rl.guide_decay` after an iteration whose guided rollouts won at least half the time: starts move
  back toward the beginning of the task as the policy learns, as in R3.
- `mixed` (LUFFY, arXiv:2504.14945): `prefix`, and a task whose unguided rollouts all failed gets one
  more member in that group: the expert's whole episode played through the policy's own prompts. Its
  decisions are trained off-policy with LUFFY's shaped weight (`krill.train.grpo.grpo_loss`).

Everything here is bookkeeping on task lists and trajectories; `krill.train.rl` runs the episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from krill.schema import Trajectory


@dataclass(frozen=True)
class Slot:
    """One rollout of an iteration: its task, its advantage group and the expert actions it replays first."""

    task: str
    group: int
    guide: tuple[str, ...] = ()


def expert_actions(traj: Trajectory | None) -> list[str] | None:
    """The actions of an expert episode that won (None: no usable guide for that task)."""
    if traj is None or not traj.success or not traj.steps:
        return None
    return [s.action for s in traj.steps]


def plan_slots(tasks: list[str], group_size: int, guided: int, fraction: float,
               experts: dict[str, list[str] | None]) -> list[Slot]:  # fmt: skip
    """G slots per task: the first G − m start from the task's beginning (one group), the last m
    replay the first round(fraction · n) expert actions (a second group). Tasks without an expert win,
    or a prefix of 0 steps, keep all G in one unguided group."""
    slots: list[Slot] = []
    for task in tasks:
        actions = experts.get(task) or []
        k = min(round(fraction * len(actions)), len(actions) - 1)  # the policy always plays the last step
        m = min(guided, group_size) if k > 0 else 0
        plain, guided_group = len({s.group for s in slots}), len({s.group for s in slots}) + 1
        slots += [Slot(task, plain) for _ in range(group_size - m)]
        slots += [Slot(task, guided_group if m < group_size else plain, tuple(actions[:k])) for _ in range(m)]
    return slots


def group_by(trajs: list[Trajectory], slots: list[Slot]) -> list[list[Trajectory]]:
    """The rollouts as advantage groups, in slot order."""
    groups: dict[int, list[Trajectory]] = {}
    for traj, slot in zip(trajs, slots, strict=True):
        groups.setdefault(slot.group, []).append(traj)
    return list(groups.values())


def all_failed(group: list[Trajectory]) -> bool:
    """An unguided group in which no rollout won: where `mixed` adds the expert's episode."""
    return bool(group) and not any(t.success for t in group) and not any(guided_steps(t) for t in group)


def guided_steps(traj: Trajectory) -> int:
    """How many of the episode's steps the expert played."""
    return sum(1 for s in traj.steps if (s.model_extra or {}).get("guided"))


def next_fraction(fraction: float, trajs: list[Trajectory], decay: float) -> float:
    """R3's schedule: the prefix shrinks once the guided rollouts win at least half of the time."""
    guided = [t for t in trajs if guided_steps(t) and t.metadata.get("guide") != "expert"]
    if guided and sum(t.success for t in guided) * 2 >= len(guided):
        return max(0.0, round(fraction - decay, 6))
    return fraction
