"""The Env protocol every environment implements, the Pool protocol over batches of them, and the
registry that builds envs by name.

`reset(task_id | None) -> (observation, info)`; `step(action) -> (observation, reward, done, info)`.
`info` always carries: task_id, task_description, task_category, admissible_actions (list[str]),
won (bool), valid (bool: was the last action admissible/understood). WebShop adds `score` (0..1).
Rewards follow the benchmarks: ALFWorld 10·won at the end; WebShop 10·score at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, Self, runtime_checkable

from krill.errors import KrillError

INVALID_OBSERVATION = "Nothing happens."

Obs = tuple[str, dict[str, Any]]  # what reset returns: (observation, info)
StepResult = tuple[str, float, bool, dict[str, Any]]  # what step returns: (observation, reward, done, info)


@runtime_checkable
class Env(Protocol):
    name: str
    max_steps: int

    def task_ids(self) -> list[str]:
        """Every task of this env's split, in a stable order."""
        ...

    def reset(self, task_id: str | None = None) -> tuple[str, dict[str, Any]]: ...

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]: ...

    def expert_action(self) -> str | None:
        """The expert's next action from the current state (None if the env has no expert)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Pool(Protocol):
    """`len(pool)` envs of one kind, reset and stepped by index as one batch (`krill.envs.pool`).

    Results come back in the order of `indices`. A failing env never stops a batch: its episode
    comes back done with `info["error"]` naming why; only a caller's mistake (a bad index, an
    unknown task) raises `KrillError`. A pool is a context manager that closes its envs.
    """

    name: str
    max_steps: int

    def task_ids(self) -> list[str]:
        """Every task of the envs' split, in a stable order."""
        ...

    def reset(self, indices: Sequence[int], task_ids: Sequence[str | None]) -> list[Obs]:
        """Reset env `indices[k]` to `task_ids[k]` (None = that env's next task)."""
        ...

    def reset_all(self, task_ids: Sequence[str | None]) -> list[Obs]:
        """Reset envs 0..len(task_ids)-1 to these tasks."""
        ...

    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[StepResult]: ...

    def expert_actions(self, indices: Sequence[int]) -> list[str | None]: ...

    def close(self) -> None: ...

    def __len__(self) -> int: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


EnvFactory = Callable[..., Env]
ENVS: dict[str, EnvFactory] = {}


def register_env(name: str) -> Callable[[EnvFactory], EnvFactory]:
    def deco(factory: EnvFactory) -> EnvFactory:
        ENVS[name] = factory
        return factory

    return deco


def make_env(name: str, split: str = "train", **kwargs: Any) -> Env:
    """Build a registered env by name; unknown names raise (no silent fallback)."""
    _import_builtin_envs()
    if name not in ENVS:
        raise KrillError(f"unknown environment {name!r}; known: {', '.join(sorted(ENVS))}")
    return ENVS[name](split=split, **kwargs)


def _import_builtin_envs() -> None:
    # Imported lazily: the ALFWorld engine is heavy and a WebShop user should not pay for it.
    import importlib

    for mod in ("krill.envs.alfworld", "krill.envs.webshop", "krill.envs.remote"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("krill.envs"):
                continue
            raise
