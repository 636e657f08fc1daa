"""The Env protocol every environment implements, and the registry that builds them by name.

`reset(task_id | None) -> (observation, info)`; `step(action) -> (observation, reward, done, info)`.
`info` always carries: task_id, task_description, task_category, admissible_actions (list[str]),
won (bool), valid (bool: was the last action admissible/understood). WebShop adds `score` (0..1).
Rewards follow the benchmarks: ALFWorld 10·won at the end; WebShop 10·score at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from krill.errors import KrillError

INVALID_OBSERVATION = "Nothing happens."


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
