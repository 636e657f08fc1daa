"""`AlfworldEnv`: ALFWorld games played on TextWorld's PDDL engine, behind krill's Env protocol.

Games come from real ALFWorld data when present (`env.alfworld.data_dir`, else `$ALFWORLD_DATA`,
holding `json_2.1.1/<split>/<task>/<trial>/game.tw-pddl`), else from the generated set (`games_dir`,
`env.alfworld.games_dir`, or the default set generated into the cache on first use).
Observations, admissible commands and "Nothing happens." are the engine's own; an episode ends when
won or after `env.alfworld.max_steps` (50) steps. Reward (`env.alfworld.reward`): `success` pays 10 at
the step the game is won (the benchmark's); `progress` pays 10 × each rise of the running maximum of
subgoal progress (`progress.py`, read from the game's facts), so an episode returns 10 × its best
progress and a won game still 10. `info["progress"]` (that running maximum, in [0, 1]) comes in both
modes, so rollouts can log it; `won`, and so success, is the game's own bit in both.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from krill.categories import ALFWORLD_TASK_TYPES
from krill.envs.alfworld.expert import Goal, next_action, observed
from krill.envs.alfworld.progress import REWARD_WON, progress_reward, subgoals
from krill.envs.base import INVALID_OBSERVATION, register_env
from krill.errors import KrillError
from krill.io import read_json


def real_data_split(cfg, split: str) -> Path | None:
    """`<data>/json_2.1.1/<split>` when the user has real ALFWorld data, else None.

    Looked for in `env.alfworld.data_dir`, `$ALFWORLD_DATA`, then `~/.cache/alfworld` (where
    `alfworld-download` puts it; importing `alfworld.info` also sets `$ALFWORLD_DATA` to that path,
    so listing it explicitly keeps the answer independent of import order).
    """
    roots = (cfg.env.alfworld.data_dir if cfg else None, os.environ.get("ALFWORLD_DATA"), "~/.cache/alfworld")
    for root in roots:
        if root:
            path = Path(root).expanduser() / "json_2.1.1" / split
            if path.is_dir() and next(path.glob("*/*/game.tw-pddl"), None):
                return path
    return None


def _real_task_ids(split_dir: Path) -> list[str]:
    """Playable games as AlfredTWEnv collects them: no movable/sliced tasks, marked solvable."""
    ids = []
    for game in sorted(split_dir.glob("*/*/game.tw-pddl")):
        folder = game.parent
        if "movable" in str(folder) or "Sliced" in str(folder) or not (folder / "traj_data.json").exists():
            continue
        if read_json(game).get("solvable", True):
            ids.append(f"{folder.parent.name}/{folder.name}")
    return ids


class AlfworldEnv:
    """One ALFWorld game at a time on the real engine (see module docstring)."""

    name = "alfworld"

    def __init__(
        self,
        split: str = "train",
        cfg=None,
        games_dir: str | Path | None = None,
        expert: str | None = None,
        **_: Any,
    ):
        from krill.config import KrillConfig
        from krill.envs.alfworld.engine import make_engine

        cfg = cfg or KrillConfig()
        self.split = split
        self.max_steps = cfg.env.alfworld.max_steps
        self.expert = expert or cfg.env.alfworld.expert
        self.reward_mode = cfg.env.alfworld.reward
        if self.expert not in ("oracle", "search"):
            raise KrillError(f"unknown ALFWorld expert {self.expert!r}; choose oracle or search")
        self.root = self._find_games(cfg, split, games_dir)
        self._ids = self._list_ids(cfg, split, games_dir)
        if not self._ids:
            raise KrillError(f"no ALFWorld games in split {split!r}", path=self.root)
        self._known = set(self._ids)
        self._order = list(self._ids)
        random.Random(f"alfworld-order:{cfg.env.seed}:{split}").shuffle(self._order)
        self._next = 0
        self._engine = make_engine(Path(cfg.cache_dir).expanduser() / "alfworld" / "sas")
        self._state: Any = None
        self.task_id: str | None = None

    # --- where the games are -----------------------------------------------------------------
    def _find_games(self, cfg, split: str, games_dir) -> Path:
        if games_dir is None:
            real = real_data_split(cfg, split)
            if real is not None:
                self.source = "alfworld"
                return real
        from krill.envs.alfworld.generate import SPLITS, ensure_games

        if split not in SPLITS:
            raise KrillError(f"unknown ALFWorld split {split!r}; known: {', '.join(SPLITS)}")
        self.source = "generated"
        root = Path(games_dir) if games_dir is not None else ensure_games(cfg)
        return root / split

    def _list_ids(self, cfg, split: str, games_dir) -> list[str]:
        if self.source == "alfworld":
            return _real_task_ids(self.root)
        from krill.envs.alfworld.generate import load_manifest

        return [e["task_id"] for e in load_manifest(self.root.parent)["splits"].get(split, [])]

    def task_ids(self) -> list[str]:
        """Every game of this split, in a stable order."""
        return list(self._ids)

    def task_category_of(self, task_id: str) -> str | None:
        """The category a game's folder names (`pick_heat_then_place_in_recep-…` → Heat), without a reset:
        what lets `krill eval --episodes N` stratify by category."""
        types = (part.split("-")[0] for part in task_id.split("/"))
        return next((ALFWORLD_TASK_TYPES[t] for t in types if t in ALFWORLD_TASK_TYPES), None)

    # --- playing -----------------------------------------------------------------------------
    def reset(self, task_id: str | None = None) -> tuple[str, dict[str, Any]]:
        """Start a game (`None`: the next one in this env's seeded order)."""
        if task_id is None:
            task_id = self._order[self._next % len(self._order)]
            self._next += 1
        if task_id not in self._known:
            raise KrillError(f"unknown ALFWorld task {task_id!r} in split {self.split}", path=self.root)
        folder = self.root / task_id
        self.task_id = task_id
        self.task_type, self.goal = _read_goal(folder / "traj_data.json")
        try:
            self._engine.load(str(folder / "game.tw-pddl"))
            self._state = self._engine.reset()
        except KrillError:
            raise
        except Exception as exc:  # a game file with wrong field types or a broken PDDL text
            raise KrillError(f"damaged game file ({type(exc).__name__}: {str(exc)[:120]})",
                             path=folder / "game.tw-pddl") from None  # fmt: skip
        self.description = self._state.feedback.split("Your task is to: ", 1)[-1].strip().rstrip(".")
        self.steps, self.won, self.done = 0, False, False
        self._seen: set[str] = set()
        self._best, self._total = self._subgoals()  # 0: nothing looked into, nothing held yet
        return self._state.feedback, self._info(valid=True)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Play one command; an inadmissible one is answered "Nothing happens." (valid False)."""
        if self._state is None:
            raise KrillError("step() before reset() on the ALFWorld env")
        action = action.strip()
        if self.done:
            return INVALID_OBSERVATION, 0.0, True, self._info(valid=False)
        valid = action in self._state.admissible_commands
        self._state, _, _ = self._engine.step(action)
        self.steps += 1
        if valid and (recep := observed(action, self._state["facts"])):
            self._seen.add(recep)
        won_now = bool(self._state["won"]) and not self.won
        self.won = self.won or won_now
        self.done = self.won or self.steps >= self.max_steps
        best_before, self._best = self._best, max(self._best, self._subgoals()[0])
        if self.reward_mode == "progress":
            reward = progress_reward(best_before, self._best, self._total)
        else:
            reward = REWARD_WON if won_now else 0.0
        obs = self._state.feedback if valid else INVALID_OBSERVATION
        return obs, reward, self.done, self._info(valid=valid)

    def expert_action(self) -> str | None:
        """The expert's next command from the current state (None when finished)."""
        if self._state is None or self.done:
            return None
        from krill.envs.alfworld.engine import ENGINE_LOCK

        with ENGINE_LOCK:  # the expert reads TextWorld facts and may parse
            return next_action(
                self._state["facts"], self.goal, self._seen if self.expert == "search" else None
            )

    def _subgoals(self) -> tuple[int, int]:
        """(reached, total) subgoals in the current state (facts only: Propositions already built, no parse)."""
        return subgoals(self._state["facts"], self.goal, self._seen, self.won)

    def admissible_actions(self) -> list[str]:
        return list(self._state.admissible_commands) if self._state is not None else []

    def close(self) -> None:
        self._state = None
        self.task_id = None
        self._engine.close()  # its planner library goes back to the pool for the next env

    def _info(self, valid: bool) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task_description": self.description,
            "task_category": ALFWORLD_TASK_TYPES.get(self.task_type, "Pick"),
            "task_type": self.task_type,
            "admissible_actions": self.admissible_actions(),
            "won": self.won,
            "valid": valid,
            "step": self.steps,
            "progress": self._best / self._total,
        }


def _read_goal(path: Path) -> tuple[str, Goal]:
    """(task type, goal) of a game's traj_data.json; wrong types are a one-line error, not a TypeError."""
    traj = read_json(path)
    params = traj.get("pddl_params", {}) if isinstance(traj, dict) else None
    task_type = traj.get("task_type") if isinstance(traj, dict) else None
    fields = [(params or {}).get(k) or "" for k in ("object_target", "parent_target", "toggle_target")]
    if (
        not isinstance(task_type, str)
        or not isinstance(params, dict)
        or not all(isinstance(f, str) for f in fields)
    ):
        raise KrillError("damaged game file: task_type and pddl_params' targets must be strings", path=path)
    return task_type, Goal(task_type, *(f.lower() for f in fields))


@register_env("alfworld")
def make_alfworld(
    split: str = "train", cfg=None, games_dir: str | Path | None = None, **kw: Any
) -> AlfworldEnv:
    """Registry factory: `make_env("alfworld", split, cfg=cfg)`."""
    return AlfworldEnv(split=split, cfg=cfg, games_dir=games_dir, **kw)
