"""The env server protocol's replies (Rust krill's fields, plus `info`, the env's full info dict).

`krill.envs.server` sends them; `krill.envs.remote` reads them back.
"""

from __future__ import annotations

import math
from typing import Any


def reset_reply(obs: str, info: dict[str, Any], task_id: str | None = None) -> dict[str, Any]:
    """The protocol's reset fields (plus `info`, the env's full info)."""
    return {
        "observation": obs,
        "task_description": info.get("task_description", ""),
        "task_category": info.get("task_category", ""),
        "available_actions": list(info.get("admissible_actions", [])),
        "task_id": info.get("task_id", task_id),
        "done": False,
        "reward": 0.0,
        "won": False,
        "valid": True,
        "info": jsonable(info),
    }


def step_reply(obs: str, reward: float, done: bool, info: dict[str, Any]) -> dict[str, Any]:
    """The protocol's step fields (plus `info`, the env's full info)."""
    return {
        "observation": obs,
        "reward": float(reward) if math.isfinite(float(reward)) else 0.0,
        "done": bool(done),
        "available_actions": list(info.get("admissible_actions", [])),
        "task_description": info.get("task_description", ""),
        "task_category": info.get("task_category", ""),
        "task_id": info.get("task_id"),
        "won": bool(info.get("won", False)),
        "valid": bool(info.get("valid", True)),
        "info": jsonable(info),
    }


def jsonable(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats become null, unknown objects their str()."""
    if obj is None or isinstance(obj, str | bool | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)
