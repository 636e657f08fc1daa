"""A small real env for the server/remote/pool tests (imported by name: `from counter_env import ...`): observations depend on the action.

`counter` (registered in the env registry on import): task `tK` asks to reach count 2 + K % 3 with
`inc`/`dec`, then `submit`. `look` changes nothing; anything else is invalid ("Nothing happens.").
Fault actions: `crash` kills the process, `hang` sleeps an hour, `nap` 1.5 s, `raise` raises.
The pool loads this file into its worker processes by path (user envs registered outside krill).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from krill.envs.base import INVALID_OBSERVATION, register_env
from krill.errors import KrillError

SPLITS = {"train": [f"t{k}" for k in range(10)], "test": [f"t{k}" for k in range(10, 15)]}


class CounterEnv:
    name = "counter"
    max_steps = 10

    def __init__(self, split: str = "train", cfg: Any = None, **_: Any):
        if split not in SPLITS:
            raise KrillError(f"unknown split {split!r} for the counter env; known: train, test")
        self.split = split
        self._tasks = list(SPLITS[split])
        self._next = 0
        self.task_id: str | None = None
        self.count = 0
        self.target = 0
        self.steps = 0
        self.done = False
        self.won = False

    def task_ids(self) -> list[str]:
        return list(self._tasks)

    def reset(self, task_id: str | None = None) -> tuple[str, dict[str, Any]]:
        if task_id is None:
            task_id = self._tasks[self._next % len(self._tasks)]
            self._next += 1
        if task_id not in self._tasks:
            raise KrillError(f"unknown task {task_id!r} in split {self.split}")
        self.task_id, self.count, self.steps, self.done, self.won = task_id, 0, 0, False, False
        self.target = 2 + int(task_id[1:]) % 3
        return f"You are in a room with a counter showing 0. Task {task_id}.", self._info(True)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if action == "crash":
            os._exit(3)
        if action == "hang":
            time.sleep(3600)
        if action == "raise":
            raise RuntimeError("counter env exploded")
        if action == "nap":  # a slow step: 1.5 s, then like "look"
            time.sleep(1.5)
            action = "look"
        self.steps += 1
        valid = action in self._admissible()
        if not valid:
            obs = INVALID_OBSERVATION
        elif action == "submit":
            self.won = self.count == self.target
            self.done = True
            obs = "You win!" if self.won else f"Wrong: the counter shows {self.count}."
        else:
            before = self.count
            time.sleep(0.002)  # racy on purpose: two unserialised steps would lose an update
            self.count = before + {"inc": 1, "dec": -1, "look": 0}[action]
            obs = f"The counter shows {self.count}."
        if self.steps >= self.max_steps:
            self.done = True
        reward = 10.0 if self.won else 0.0
        return obs, reward, self.done, self._info(valid)

    def expert_action(self) -> str | None:
        if self.task_id is None or self.done:
            return None
        if self.count < self.target:
            return "inc"
        return "dec" if self.count > self.target else "submit"

    def close(self) -> None:
        self.task_id = None

    def _admissible(self) -> list[str]:
        return ["inc", "dec", "look", "submit"]

    def _info(self, valid: bool) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task_description": f"make the counter show {self.target}",
            "task_category": "Pick",
            "admissible_actions": self._admissible(),
            "won": self.won,
            "valid": valid,
        }


@register_env("counter")
def make_counter(split: str = "train", cfg: Any = None, **kw: Any) -> CounterEnv:
    return CounterEnv(split=split, cfg=cfg, **kw)


@contextmanager
def live_server(app: Any, port: int = 0, **config: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 (a free port unless given) in a thread; yields the URL.

    `config`: more uvicorn.Config options (e.g. `http=` a protocol class)."""
    import uvicorn  # here, not at the top: pool workers load this file and never serve

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


def real_env_or_skip(env_name: str) -> tuple[Any, str]:
    """(config, eval split) for a built-in env, or skip when this checkout does not register it."""
    from krill.config import load_config
    from krill.envs.base import ENVS, _import_builtin_envs

    _import_builtin_envs()
    if env_name not in ENVS:
        pytest.skip(f"the {env_name} env is not in this checkout")
    # the tiny preset's small catalogue / game set, with the real step limits, in a cache of our own
    # (other runs on this machine may be writing the default cache at the same time)
    overrides = ["env.alfworld.max_steps=50", "env.webshop.max_steps=15", f"cache_dir={_test_cache()}"]
    cfg = load_config(None, preset="tiny", overrides=overrides)
    return cfg, ("valid_unseen" if env_name == "alfworld" else "test")


_CACHE: list[str] = []


def _test_cache() -> str:
    """One temporary cache per test process (games are generated once, then reused)."""
    if not _CACHE:
        _CACHE.append(tempfile.mkdtemp(prefix="krill-envs-test-"))
        atexit.register(shutil.rmtree, _CACHE[0], True)
    return _CACHE[0]
