"""ETO SFT ALFWorld conversations → krill trajectories (`krill convert eto`).

Source: the ETO data set (agent-eto/eto-sft-trajectory, `alfworld_sft.json`, 3,119 successful
episodes): a JSON list of `{"id", "game_file"?, "conversations": [{"from": "human"|"gpt", "value"}]}`.
The first human turn is the instructions (answered "OK"), the turn holding "Your task is to: …" is
the room and the task, each gpt turn is "Thought: …\\nAction: …", and the human turn after it is
the observation ("Observation: …").

Step convention (Rust krill's, and what SFT needs): a step pairs the observation the agent acted on
with the action it took. The text that followed the last action is kept in
`metadata.final_observation`. Return = 10 on the last step (krill's ALFWorld reward, 10·won).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from krill.categories import ALFWORLD_TASK_TYPES, category_from_task
from krill.errors import KrillError
from krill.formats.trajectories import save_trajectories
from krill.io import MAX_TRAJECTORY_BYTES, read_json
from krill.schema import Step, Trajectory

ALFWORLD_WIN_REWARD = 10.0
_ACTION = re.compile(r"Action:\s*(.+?)\s*(?:\n|$)")
_TASK = "Your task is to:"


def convert_eto(in_path: str | Path, out_path: str | Path, max_n: int | None = None) -> dict[str, Any]:
    """Convert an ETO ALFWorld SFT file; returns a summary (count per category, steps, skipped)."""
    raw = read_json(in_path, max_bytes=MAX_TRAJECTORY_BYTES)
    if not isinstance(raw, list):
        raise KrillError("expected a JSON list of ETO conversations", path=in_path)
    trajs: list[Trajectory] = []
    skipped = 0
    for i, entry in enumerate(raw):
        if max_n and len(trajs) >= max_n:
            break
        traj = eto_entry_to_trajectory(entry, index=i, path=in_path)
        if traj is None:
            skipped += 1
            continue
        trajs.append(traj)
    if not trajs:
        raise KrillError("no ALFWorld episodes found (no 'Your task is to:' turn with actions)", path=in_path)
    save_trajectories(out_path, trajs)
    return summarize(trajs, skipped=skipped, out_path=out_path)


def eto_entry_to_trajectory(entry: Any, *, index: int, path: Any = None) -> Trajectory | None:
    """One ETO conversation → a Trajectory, or None when it holds no task or no action."""
    where = f"[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("conversations"), list):
        raise KrillError("expected an object with a 'conversations' list", path=path, where=where)
    task, pending, steps, final_obs = "", None, [], ""
    for j, turn in enumerate(entry["conversations"]):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise KrillError("expected {'from', 'value'}", path=path, where=f"{where}.conversations[{j}]")
        text, who = turn["value"].strip(), turn.get("from")
        if who == "human":
            if _TASK in text:  # a new task (an in-context example before it is discarded)
                task = text.split(_TASK, 1)[1].strip().splitlines()[0].strip()
                pending, steps = _room(text), []
            else:
                pending = text.removeprefix("Observation:").strip()
            final_obs = pending or ""
        elif who == "gpt":
            m = _ACTION.search(text)
            if m and pending is not None and task:
                think = text[: m.start()].strip().removeprefix("Thought:").strip() or None
                steps.append(Step(observation=pending, action=m.group(1), step_index=len(steps), think=think))
                pending, final_obs = None, ""
    if not task or not steps:
        return None
    steps[-1].reward = ALFWORLD_WIN_REWARD
    source_id = str(entry.get("id", entry.get("item_id", index)))
    game_file = str(entry.get("game_file", ""))
    return Trajectory(
        id=f"eto-{source_id}",
        task_description=task,
        task_category=_category(game_file, source_id, task),
        steps=steps,
        total_reward=ALFWORLD_WIN_REWARD,
        success=True,
        metadata={
            "environment": "alfworld",
            "num_steps": len(steps),
            "total_tokens": 0,
            "skills_used": [],
            "source": "eto",
            "source_id": source_id,
            **({"game_file": game_file} if game_file else {}),
            **({"final_observation": final_obs} if final_obs else {}),
        },
    )


def _room(text: str) -> str:
    """The room description that precedes the task line (drop any instruction preamble)."""
    room = text.split(_TASK, 1)[0].strip()
    idx = room.rfind("You are in the middle")
    return room[idx:] if idx >= 0 else room


def _category(game_file: str, source_id: str, task: str) -> str | None:
    """From the ALFWorld task type in the game path or id; else from the task wording."""
    for key in (game_file, source_id):
        for task_type, cat in ALFWORLD_TASK_TYPES.items():
            if task_type in key:
                return cat
    return category_from_task(task)


def summarize(trajs: list[Trajectory], *, skipped: int = 0, out_path: Any = None) -> dict[str, Any]:
    per_cat = Counter(t.task_category or "unknown" for t in trajs)
    total_steps = sum(len(t.steps) for t in trajs)
    return {
        "count": len(trajs),
        "per_category": dict(sorted(per_cat.items())),
        "total_steps": total_steps,
        "avg_steps": total_steps / len(trajs) if trajs else 0.0,
        "skipped": skipped,
        "output": str(out_path) if out_path is not None else None,
    }
