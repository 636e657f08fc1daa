"""Protocols for the model backends: Policy (generates actions), Embedder, and a chat client for teachers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

Messages = list[dict[str, str]]  # OpenAI-style chat messages: [{"role": "user", "content": ...}]


@dataclass
class Generation:
    """One sampled response. `logprobs` are per response token (when requested)."""

    text: str
    prompt_tokens: int = 0
    response_tokens: int = 0
    prompt_text: str | None = None  # the exact templated prompt (local policies), for re-scoring in RL
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    finish_reason: str = "stop"
    error: str | None = None  # set when a remote call failed for good; the step counts as invalid
    choice_index: int | None = None  # answered from given choices: the one taken (krill.models.choices)
    choice_logprob: float | None = None  # log π_T of that choice (the choice policy GRPO trains)
    # why a served generation stopped, where the server says (vLLM's `stop_reason`): None = end of
    # sequence, else the stop string or token id it hit; `stop_reason_known` False = not reported
    stop_reason: str | int | None = None
    stop_reason_known: bool = False


@runtime_checkable
class Policy(Protocol):
    name: str

    def generate(
        self,
        batch: list[Messages],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        want_logprobs: bool = False,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> list[Generation]:
        """Generate one response per conversation, batched where the backend can."""
        ...


@runtime_checkable
class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 array of shape (len(texts), dim)."""
        ...


@runtime_checkable
class ChatClient(Protocol):
    """What a teacher needs from an LLM: complete many prompts concurrently, as JSON."""

    def complete_json(
        self, prompts: list[Messages], *, schema: dict[str, Any]
    ) -> list[dict[str, Any] | None]:
        """One validated JSON object per prompt; None where it stayed invalid after one re-ask."""
        ...
