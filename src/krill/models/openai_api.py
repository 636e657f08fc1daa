"""OpenAI-compatible backends (OpenAI, vLLM, llama.cpp server, Ollama) on the official async client:
`OpenAIPolicy` (agent actions), `OpenAIChatClient` (teacher JSON), `OpenAIEmbedder` (`/embeddings`).

Every request runs under one semaphore (`concurrency`), a hard per-try deadline (`timeout`) and
krill's retry policy (`krill.retry`). The API key comes only from the env var named by
`api_key_env` and is masked in every message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from krill.errors import KrillError
from krill.io import append_jsonl, read_jsonl, truncate_torn_tail
from krill.models.base import Generation, Messages
from krill.models.decoding import find_stop
from krill.models.embedder import normalize_rows
from krill.models.endpoint import ApiStats, Endpoint, chat_once, chat_params, describe_error, run_sync
from krill.models.jsonschema_lite import extract_json, validate
from krill.retry import TransientError, async_retrying

if TYPE_CHECKING:
    from krill.config import EndpointConfig, TeacherConfig

CHARS_PER_TOKEN_CAP = 16  # a server ignoring max_tokens cannot flood us: answers are cut at this × max_tokens
REASK = (
    "Your previous answer could not be used: {error}. Answer again with only one JSON object "
    "that follows the requested format, no prose and no code fences."
)


def restore_stop(text: str, stop: list[str] | None, finish_reason: str) -> str:
    """Make remote texts look like local ones: cut after a stop string the server ignored, and put
    back a closing tag (e.g. `</action>`) that the server removed when it stopped on it.

    >>> restore_stop("<action>open fridge 1", ["</action>"], "stop")
    '<action>open fridge 1</action>'
    """
    if not stop:
        return text
    end = find_stop(text, stop)
    if end >= 0:
        return text[:end]
    if finish_reason == "stop":
        for s in stop:
            if s.startswith("</") and s.endswith(">") and text.count(f"<{s[2:]}") > text.count(s):
                return text + s
    return text


class _Served:
    """A model behind an OpenAI-compatible endpoint: its config section, name, endpoint and call stats."""

    where = "model"

    def __init__(self, cfg: EndpointConfig, *, check: bool = True):
        self.cfg = cfg
        self.name = f"openai:{cfg.model}"
        self.endpoint = Endpoint(cfg, where=self.where)
        self.stats = ApiStats()
        if check:  # fail now, with the server named, rather than at the first batch
            self.endpoint.probe()


class OpenAIPolicy(_Served):
    """A Policy served by an OpenAI-compatible endpoint (`cfg`: a PolicyConfig).

    With `guided_choice` (vllm | json_schema) it takes `choices` like the local decoder: each row's
    answer is constrained by the server to one of its admissible actions."""

    where = "model.policy"

    @property
    def supports_choices(self) -> bool:
        return self.cfg.guided_choice != "none"

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
        choices: list[list[str] | None] | None = None,
    ) -> list[Generation]:
        """All requests concurrently; one that fails for good yields `Generation(text="", error=...)`."""
        if not batch:
            return []
        params = chat_params(self.cfg.model, max_new_tokens, temperature, top_p)
        if stop:
            params["stop"] = stop[:4]  # the OpenAI API takes at most 4; the rest are applied locally
        if seed is not None:
            params["seed"] = seed
        if want_logprobs:
            params["logprobs"] = True
        rows = [guided_params(params, self.cfg.guided_choice, c) for c in (choices or [None] * len(batch))]
        return run_sync(lambda: self._run(batch, rows, max_new_tokens, stop))

    async def _run(self, batch, rows, max_new_tokens, stop) -> list[Generation]:
        sem = asyncio.Semaphore(self.cfg.concurrency)
        async with self.endpoint.client() as client:
            return await asyncio.gather(
                *(
                    self._one(client, sem, m, p, max_new_tokens, stop)
                    for m, p in zip(batch, rows, strict=True)
                )
            )

    async def _one(self, client, sem, messages, params, max_new_tokens, stop) -> Generation:
        async with sem:
            try:
                ans = await chat_once(
                    client,
                    self.endpoint,
                    self.stats,
                    max_retries=self.cfg.max_retries,
                    messages=messages,
                    **params,
                )
            except Exception as exc:  # failed for good: the step counts as invalid, the batch goes on
                self.stats.failures += 1
                return Generation(text="", finish_reason="error", error=describe_error(exc, self.endpoint))
        text, finish = ans.text, ans.finish_reason
        if "response_format" in params:  # json_schema guided choice: the action is the object's field
            text = action_from_json(text)
        if len(text) > CHARS_PER_TOKEN_CAP * max_new_tokens:
            text, finish = text[: CHARS_PER_TOKEN_CAP * max_new_tokens], "length"
        return Generation(
            text=restore_stop(text, stop, finish),
            prompt_tokens=ans.prompt_tokens,
            response_tokens=ans.completion_tokens,
            logprobs=ans.logprobs,
            finish_reason=finish,
            stop_reason=ans.stop_reason,
            stop_reason_known=ans.stop_reason_known,
        )


def guided_params(params: dict[str, Any], mode: str, choices: list[str] | None) -> dict[str, Any]:
    """`params` for one row, constrained to `choices` the way the server understands (`guided_choice`).

    vllm: `guided_choice` (vLLM ≤ 0.10) and `structured_outputs.choice` (later; unknown fields are
    ignored by vLLM). json_schema: a strict schema `{"action": enum}` (OpenAI structured outputs);
    no stop strings, which could cut the JSON."""
    if mode == "none" or not choices:
        return params
    if mode == "vllm":
        return {**params, "extra_body": {"guided_choice": choices, "structured_outputs": {"choice": choices}}}
    schema = {"type": "object", "properties": {"action": {"type": "string", "enum": choices}},
              "required": ["action"], "additionalProperties": False}  # fmt: skip
    rest = {k: v for k, v in params.items() if k != "stop"}
    return {**rest, "response_format": {"type": "json_schema",
                                        "json_schema": {"name": "action", "strict": True, "schema": schema}}}  # fmt: skip


def action_from_json(text: str) -> str:
    """The `action` of a structured answer; anything else is returned as it came (then parsed as text)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    action = value.get("action") if isinstance(value, dict) else None
    return action if isinstance(action, str) else text


def cache_key(model: str, messages: Messages) -> str:
    """sha256 of (model, messages): the response cache's key."""
    blob = json.dumps({"model": model, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class OpenAIChatClient:
    """The LLM teacher's client: concurrent, retried JSON answers validated against a schema.

    Each invalid answer is re-asked once with the validation error; still invalid → None (`stats.invalid`).
    With `cache_path`, every valid answer is appended to a JSONL cache as it arrives, so a rerun of
    an interrupted job does not ask finished prompts again.
    """

    def __init__(self, cfg: TeacherConfig, cache_path: str | Path | None = None, *, check: bool = True):
        self.cfg = cfg
        self.endpoint = Endpoint(cfg, where="model.teacher")
        self.stats = ApiStats()
        self.cache_path = Path(cache_path) if cache_path else None
        self._cache: dict[str, Any] = self._load_cache()
        if check:
            self.endpoint.probe()

    def _load_cache(self) -> dict[str, Any]:
        if not self.cache_path or not self.cache_path.exists():
            return {}
        truncate_torn_tail(self.cache_path)  # a kill mid-append leaves a torn last line
        return {
            row["key"]: row["answer"] for row in read_jsonl(self.cache_path, repair_tail=True) if "key" in row
        }

    def complete_json(
        self, prompts: list[Messages], *, schema: dict[str, Any]
    ) -> list[dict[str, Any] | None]:
        """One validated JSON value per prompt (None where it stayed invalid or the request failed)."""
        if not prompts:
            return []
        return run_sync(lambda: self._run(prompts, schema))

    async def _run(self, prompts, schema) -> list[Any]:
        sem = asyncio.Semaphore(self.cfg.concurrency)
        unique: dict[str, Messages] = {}  # a prompt repeated in one batch is asked once
        for p in prompts:
            unique.setdefault(cache_key(self.cfg.model, p), p)
        async with self.endpoint.client() as client:
            answers = await asyncio.gather(*(self._one(client, sem, p, schema) for p in unique.values()))
        by_key = dict(zip(unique, answers, strict=True))
        return [by_key[cache_key(self.cfg.model, p)] for p in prompts]

    async def _one(self, client, sem, messages: Messages, schema) -> Any:
        key = cache_key(self.cfg.model, messages)
        if key in self._cache and validate(self._cache[key], schema) is None:  # a changed schema re-asks
            self.stats.cache_hits += 1
            return self._cache[key]
        async with sem:
            try:
                value, error, text = await self._ask(client, messages, schema)
                if error is not None:
                    self.stats.reasks += 1
                    retry_msgs = [
                        *messages,
                        {"role": "assistant", "content": text[:4000]},
                        {"role": "user", "content": REASK.format(error=error)},
                    ]
                    value, error, _ = await self._ask(client, retry_msgs, schema)
            except Exception:  # failed for good (after retries): counted, the batch goes on
                self.stats.failures += 1
                return None
        if error is not None:
            self.stats.invalid += 1
            return None
        self._cache[key] = value
        if self.cache_path:
            append_jsonl(self.cache_path, {"key": key, "model": self.cfg.model, "answer": value})
        return value

    async def _ask(self, client, messages, schema) -> tuple[Any, str | None, str]:
        params = chat_params(self.cfg.model, self.cfg.max_tokens, self.cfg.temperature, 1.0)
        ans = await chat_once(
            client, self.endpoint, self.stats, max_retries=self.cfg.max_retries, messages=messages, **params
        )
        text = ans.text[: CHARS_PER_TOKEN_CAP * self.cfg.max_tokens]
        try:
            value = extract_json(text)
        except ValueError as exc:
            return None, str(exc), text
        error = validate(value, schema)
        return (value, None, text) if error is None else (None, f"schema violation at {error}", text)


class OpenAIEmbedder(_Served):
    """Embeddings from an OpenAI-compatible `/embeddings` endpoint, batched and concurrent, unit-norm."""

    where = "model.embedding"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return run_sync(lambda: self._run(list(texts)))

    async def _run(self, texts: list[str]) -> np.ndarray:
        size = self.cfg.batch_size
        sem = asyncio.Semaphore(self.cfg.concurrency)
        async with self.endpoint.client() as client:
            parts = await asyncio.gather(
                *(self._batch(client, sem, texts[lo : lo + size]) for lo in range(0, len(texts), size))
            )
        return normalize_rows(np.concatenate(parts, axis=0))

    async def _batch(self, client, sem, texts: list[str]) -> np.ndarray:
        def on_retry(_exc: BaseException) -> None:
            self.stats.retries += 1

        async with sem:
            try:
                retrying = async_retrying(
                    self.cfg.max_retries, initial=self.endpoint.retry_initial, on_retry=on_retry
                )
                async for attempt in retrying:
                    with attempt:
                        self.stats.requests += 1
                        try:
                            resp = await asyncio.wait_for(
                                client.embeddings.create(model=self.cfg.model, input=texts),
                                self.endpoint.timeout,
                            )
                        except json.JSONDecodeError as exc:
                            raise TransientError(f"response body is not JSON ({exc.msg})") from None
                        return _parse_embeddings(resp, len(texts))
            except Exception as exc:
                self.stats.failures += 1
                raise KrillError(
                    f"embedding request failed: {describe_error(exc, self.endpoint)}", where="model.embedding"
                ) from None
        raise AssertionError("unreachable")


def _parse_embeddings(resp: Any, n: int) -> np.ndarray:
    try:
        data = sorted(resp.data, key=lambda d: d.index)
        vecs = np.asarray([d.embedding for d in data], dtype=np.float32)
    except (AttributeError, TypeError, ValueError) as exc:
        raise TransientError(f"malformed embeddings response ({exc})") from None
    if vecs.ndim != 2 or vecs.shape[0] != n:
        raise TransientError(
            f"embeddings response has {vecs.shape[0] if vecs.ndim else 0} vectors for {n} texts"
        )
    return vecs
