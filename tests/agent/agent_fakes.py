"""Small real fakes for the agent tests: a kitchen env whose observations depend on the action, a pool
over env objects a test built, a rule-based policy computed from the prompt, and a hashing embedder."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from krill.envs.base import INVALID_OBSERVATION, Env
from krill.envs.pool import BasePool, Reply, call_env
from krill.models.base import Generation

OBJECTS = ["apple", "potato", "egg", "tomato", "mug", "bread"]
PLACES = ["countertop 1", "microwave 1", "fridge 1"]


class KitchenEnv:
    """Task tK: take object K from the countertop, heat it in the microwave, put it in the fridge."""

    name = "kitchen"
    max_steps = 10

    def __init__(self, split: str = "train", **_: Any):
        self.split = split
        self.task = ""

    def task_ids(self) -> list[str]:
        return [f"t{k}" for k in range(len(OBJECTS))]

    def reset(self, task_id: str | None = None):
        self.task = task_id or "t0"
        self.obj = OBJECTS[int(self.task[1:]) % len(OBJECTS)]
        self.at, self.holding, self.hot, self.won, self.steps = None, False, False, False, 0
        obs = f"You are in the kitchen. You see a countertop 1, a microwave 1, a fridge 1. Your task is to: {self._desc()}"
        return obs, self._info(True)

    def _desc(self) -> str:
        return f"heat some {self.obj} and put it in fridge"

    def admissible(self) -> list[str]:
        acts = [f"go to {p}" for p in PLACES if p != self.at] + ["look", "inventory"]
        if self.at == "countertop 1" and not self.holding and not self.won:
            acts.append(f"take {self.obj} 1 from countertop 1")
        if self.at == "microwave 1" and self.holding:
            acts.append(f"heat {self.obj} 1 with microwave 1")
        if self.at == "fridge 1" and self.holding:
            acts.append(f"put {self.obj} 1 in/on fridge 1")
        return acts

    def _info(self, valid: bool) -> dict[str, Any]:
        return {
            "task_id": self.task,
            "task_description": self._desc(),
            "task_category": "Heat",
            "admissible_actions": self.admissible(),
            "won": self.won,
            "valid": valid,
        }

    def step(self, action: str):
        self.steps += 1
        if action not in self.admissible():
            return INVALID_OBSERVATION, 0.0, self.steps >= self.max_steps, self._info(False)
        if action.startswith("go to "):
            self.at = action[6:]
            obs = f"You arrive at {self.at}. " + (
                f"On it you see a {self.obj} 1."
                if self.at == "countertop 1" and not self.holding
                else "Nothing special."
            )
        elif action.startswith("take"):
            self.holding, obs = True, f"You pick up the {self.obj} 1 from the countertop 1."
        elif action.startswith("heat"):
            self.hot, obs = True, f"You heat the {self.obj} 1 using the microwave 1."
        elif action.startswith("put"):
            self.holding, self.won = False, self.hot
            obs = f"You put the {self.obj} 1 in/on the fridge 1."
        elif action == "inventory":
            obs = f"You are carrying: a {self.obj} 1." if self.holding else "You are not carrying anything."
        else:
            obs = f"You are at {self.at or 'the middle of the kitchen'}."
        done = self.won or self.steps >= self.max_steps
        return obs, 10.0 if self.won else 0.0, done, self._info(True)

    def expert_action(self) -> str | None:
        if not self.holding:
            return (
                "go to countertop 1" if self.at != "countertop 1" else f"take {self.obj} 1 from countertop 1"
            )
        if not self.hot:
            return "go to microwave 1" if self.at != "microwave 1" else f"heat {self.obj} 1 with microwave 1"
        return "go to fridge 1" if self.at != "fridge 1" else f"put {self.obj} 1 in/on fridge 1"

    def close(self) -> None:
        pass


class EnvListPool(BasePool):
    """The envs a test built, in this process: `SerialPool`'s semantics, but an env that raised is
    kept (the test owns it) instead of rebuilt."""

    def __init__(self, envs: list[Env]):
        super().__init__(len(envs))
        self.envs = list(envs)
        self.name = getattr(self.envs[0], "name", "env")
        self.max_steps = self.envs[0].max_steps

    def task_ids(self) -> list[str]:
        return self.envs[0].task_ids()

    def _run(self, cmd: str, items: list[tuple[int, Any]]) -> dict[int, Reply]:
        return {i: call_env(self.envs[i], cmd, arg) for i, arg in items}

    def close(self) -> None:
        for e in self.envs:
            e.close()


ADMISSIBLE_BLOCK = re.compile(r"## Admissible Actions\n((?:- .*\n?)+)")
STEP_RE = re.compile(r"## Current Observation \(step (\d+)\)")


class RulePolicy:
    """Deterministic: the answer is a function of the prompt only. Every 3rd step it babbles (invalid);
    otherwise it picks an admissible action by a hash of the prompt, in a format that varies."""

    name = "rule-policy"

    def __init__(self, think: bool = False):
        self.think = think
        self.batch_sizes: list[int] = []

    def generate(
        self, batch, *, max_new_tokens, temperature=0.0, top_p=1.0, want_logprobs=False, stop=None, seed=None
    ):
        self.batch_sizes.append(len(batch))
        return [self._one(m, want_logprobs) for m in batch]

    def _one(self, messages, want_logprobs: bool) -> Generation:
        user = messages[-1]["content"]
        block = ADMISSIBLE_BLOCK.search(user)
        acts = [line[2:] for line in block.group(1).splitlines()] if block else []
        step = int(STEP_RE.search(user).group(1))
        h = int(hashlib.sha256(user.encode()).hexdigest(), 16)
        if step % 3 == 0 or not acts:
            text = "I would like to dance around the kitchen"
        else:
            act = acts[h % len(acts)]
            text = [
                f"<action>{act.upper()}</action>",
                f"Action: {act}.",
                f"<think>hmm</think><action>{act}</action>",
            ][h % 3]
        ids = [ord(c) % 50 for c in text]
        return Generation(
            text=text,
            prompt_tokens=len(user) // 4,
            response_tokens=len(ids),
            prompt_text="PROMPT:" + user,
            token_ids=ids,
            logprobs=[-0.5] * len(ids) if want_logprobs else None,
        )


class HashEmbedder:
    """Bag-of-words hashed into 64 dims, L2-normalised: similar wording → high cosine."""

    name = "hash-bow"
    dim = 64

    def __init__(self):
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)
