"""Trajectories written as compact text, for teacher prompts and the raw-trajectory memory.

A step holds the observation the agent saw *before* acting and the action it took (as rollouts and
the Rust format record them), so an action's result is the next step's observation; `valid` on the
step, when recorded, is authoritative, else an invalid action shows as a next "Nothing happens.".

Long trajectories are compressed, not cut blindly: a run of identical (action, observation) steps
is folded into one line with a repeat count (`(x7) > take apple 1 from table 1 / Nothing happens.`),
and each observation is truncated at `max_obs_chars` with a visible `…[truncated]` marker so the
reader knows text is missing. The failure point stays visible: the last steps are always kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from krill.envs.base import INVALID_OBSERVATION
from krill.schema import Trajectory

TRUNCATION_MARKER = "…[truncated]"


def action_validity(traj: Trajectory) -> list[bool]:
    """Was each step's action valid? The recorded `valid` flag, else: the next observation is not 'Nothing happens.'."""
    out = []
    for i, step in enumerate(traj.steps):
        if step.valid is not None:
            out.append(bool(step.valid))
        elif i + 1 < len(traj.steps):
            out.append(traj.steps[i + 1].observation.strip() != INVALID_OBSERVATION)
        else:
            out.append(True)
    return out


def truncate(text: str, max_chars: int) -> str:
    """Cut `text` to at most `max_chars` characters (marker included), on a word boundary if possible.

    >>> truncate("You arrive at countertop 1. On it you see an apple.", 30)
    'You arrive at…[truncated]'
    """
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    room = max(0, max_chars - len(TRUNCATION_MARKER))
    cut = text[:room]
    if " " in cut[room // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,.;:") + TRUNCATION_MARKER


@dataclass(frozen=True)
class FoldedStep:
    """`count` consecutive identical steps, starting at step index `first`."""

    first: int
    action: str
    observation: str
    count: int


def fold_steps(traj: Trajectory) -> list[FoldedStep]:
    """Fold runs of identical (action, observation) pairs; keeps their order and first index."""
    out: list[FoldedStep] = []
    for i, step in enumerate(traj.steps):
        action, obs = step.action.strip(), " ".join(step.observation.split())
        if out and out[-1].action == action and out[-1].observation == obs:
            last = out[-1]
            out[-1] = FoldedStep(last.first, action, obs, last.count + 1)
        else:
            out.append(FoldedStep(i, action, obs, 1))
    return out


def compress_trajectory(
    traj: Trajectory,
    *,
    max_obs_chars: int = 300,
    max_lines: int = 60,
    with_outcome: bool = True,
) -> str:
    """The trajectory as observation / numbered `> action` lines, folded and truncated.

    Above `max_lines` folded steps, the middle is elided (the start shows the plan, the end shows
    where it went wrong) and the number of elided steps is stated.
    """
    folded = fold_steps(traj)
    invalid = {i for i, ok in enumerate(action_validity(traj)) if not ok}
    if len(folded) > max_lines:
        head, tail = max_lines // 3, max_lines - max_lines // 3
        skipped = sum(f.count for f in folded[head:-tail])
        folded = [*folded[:head], FoldedStep(-1, "", f"[{skipped} steps elided]", 0), *folded[-tail:]]
    lines = []
    for f in folded:
        if f.count == 0:
            lines.append(f.observation)
            continue
        rep = f"(x{f.count}) " if f.count > 1 else ""
        lines.append(f"   {truncate(f.observation, max_obs_chars)}")
        flag = "  [invalid]" if f.first in invalid else ""
        lines.append(f"{f.first + 1}. {rep}> {f.action}{flag}")
    if with_outcome:
        outcome = "SUCCESS" if traj.success else "FAILURE"
        lines.append(f"Outcome: {outcome} after {len(traj.steps)} steps (reward {traj.total_reward:g}).")
    return "\n".join(lines)


def summarize_trajectory(traj: Trajectory, *, max_chars: int = 240) -> str:
    """One line: task, outcome, step count, invalid actions and the last actions (for shallow analysis)."""
    invalid = action_validity(traj).count(False)
    last = "; ".join(s.action for s in traj.steps[-3:])
    outcome = "success" if traj.success else "failure"
    text = f"{traj.task_description} — {outcome}, {len(traj.steps)} steps, {invalid} invalid; last: {last}"
    return truncate(text, max_chars)
