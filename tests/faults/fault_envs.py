"""A small real env whose tasks carry their own fault, for the environment-fault tests.

`flaky` (registered on import): task `ok-K` is won by `go` three times; `crash-K` kills its process
(`os._exit`) on the second step, `hang-K` sleeps an hour there, `raise-K` raises. The expert always
answers `go`. Pool workers load this file by path (an env registered outside krill).
"""

from __future__ import annotations

import os
import time
from typing import Any

from krill.envs.base import register_env

TASKS = ["ok-0", "crash-1", "ok-2", "hang-3", "ok-4", "raise-5"]


class FlakyEnv:
    name = "flaky"
    max_steps = 6

    def __init__(self, split: str = "train", **_: Any):
        self.task, self.pos, self.won = "ok-0", 0, False

    def task_ids(self) -> list[str]:
        return list(TASKS)

    def reset(self, task_id: str | None = None) -> tuple[str, dict[str, Any]]:
        self.task, self.pos, self.won = task_id or TASKS[0], 0, False
        return f"You stand at the start of corridor {self.task}.", self._info(True)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        kind = self.task.split("-")[0]
        if self.pos == 1 and kind == "crash":
            os._exit(3)
        if self.pos == 1 and kind == "hang":
            time.sleep(3600)
        if self.pos == 1 and kind == "raise":
            raise RuntimeError("the corridor collapsed")
        valid = action == "go"
        self.pos += valid
        self.won = self.pos >= 3
        obs = "You reach the exit." if self.won else f"You walk on (step {self.pos})."
        return obs, 10.0 if self.won else 0.0, self.won, self._info(valid)

    def expert_action(self) -> str | None:
        return None if self.won else "go"

    def close(self) -> None:
        pass

    def _info(self, valid: bool) -> dict[str, Any]:
        return {"task_id": self.task, "task_description": f"walk corridor {self.task} to the exit",
                "task_category": "Pick", "admissible_actions": ["go", "look"], "won": self.won, "valid": valid}  # fmt: skip


@register_env("flaky")
def make_flaky(split: str = "train", cfg: Any = None, **kw: Any) -> FlakyEnv:
    return FlakyEnv(split=split, **kw)
