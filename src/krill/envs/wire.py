"""The env server's wire format, written and read in one place: `krill.envs.server` reads requests and
writes replies, `krill.envs.remote.RemoteEnv` writes requests and reads replies.

Replies carry Rust krill's fields plus `info`, the env's full info dict, so a krill client rebuilds
it exactly; without `info` (a Rust krill server) the client rebuilds it from the fields. A reset on a
server with session handles also returns `session`. Errors are `{"error": message, "status": code}`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from krill.envs.base import Obs, StepResult

SESSION_HEADER = "X-Session"  # the handle /reset returned: only its holder reaches that session
CLIENT_HEADER = "X-Client-Id"  # the Rust krill protocol's session key
REQUEST_ID_HEADER = "X-Request-Id"  # one per logical call: a retry with the same id gets the cached reply
UNKNOWN_SESSION = "unknown session"  # how a 404 for a lost session starts; clients then open a new one
_SPLIT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ApiError(Exception):
    """A 4xx/5xx answer with a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    def reply(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


def read_error(reply: Any) -> str | None:
    """The message of an error reply (None if `reply` is not one)."""
    return str(reply["error"]) if isinstance(reply, dict) and "error" in reply else None


# -- requests ---------------------------------------------------------------------------------------
def reset_request(task_id: str | None, split: str | None = None) -> dict[str, Any]:
    return {"task_id": task_id, "split": split} if split else {"task_id": task_id}


def read_reset_request(body: dict[str, Any], default_split: str) -> tuple[str | None, str]:
    """(task_id, split) of a /reset body; an integer task id is taken as its string."""
    task_id = body.get("task_id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if task_id is not None and not isinstance(task_id, str):
        raise ApiError(422, f"field 'task_id' must be a string or null, got {type(task_id).__name__}")
    return task_id, read_split(body.get("split"), default_split)


def read_split(value: Any, default: str) -> str:
    """A split name from a body or a query (absent or empty = `default`)."""
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not _SPLIT_RE.match(value):
        raise ApiError(422, "field 'split' must be a split name such as 'train' or 'valid_unseen'")
    return value


def step_request(action: str) -> dict[str, Any]:
    return {"action": action}


def read_step_request(body: dict[str, Any]) -> str:
    if "action" not in body:
        raise ApiError(422, "missing field 'action'")
    action = body["action"]
    if not isinstance(action, str):
        raise ApiError(422, f"field 'action' must be a string, got {type(action).__name__}")
    return action


# -- replies ----------------------------------------------------------------------------------------
def reset_reply(
    obs: str, info: dict[str, Any], task_id: str | None = None, session: str | None = None
) -> dict[str, Any]:
    """The protocol's reset fields (plus `info`, and `session` when the server hands out handles)."""
    reply = {
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
    if session is not None:
        reply["session"] = session
    return reply


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


def read_reset_reply(reply: dict[str, Any], task_id: str | None = None) -> tuple[Obs, str | None]:
    """((observation, info), the session handle if the server gave one)."""
    session = reply.get("session")
    obs = str(reply.get("observation", "")), _read_info(reply, task_id)
    return obs, session if isinstance(session, str) else None


def read_step_reply(reply: dict[str, Any]) -> StepResult:
    obs, reward, done = (
        str(reply.get("observation", "")),
        float(reply.get("reward", 0.0)),
        bool(reply.get("done")),
    )
    return obs, reward, done, _read_info(reply)


def _read_info(reply: dict[str, Any], task_id: str | None = None) -> dict[str, Any]:
    """The Env `info` dict: the server's full info when sent, else rebuilt from the protocol fields."""
    info = dict(reply.get("info") or {})
    info.setdefault("task_id", reply.get("task_id", task_id))
    info.setdefault("task_description", reply.get("task_description", ""))
    info.setdefault("task_category", reply.get("task_category", ""))
    info.setdefault("admissible_actions", list(reply.get("available_actions", [])))
    info.setdefault("won", bool(reply.get("won", False)))
    info.setdefault("valid", bool(reply.get("valid", True)))
    return info


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
