"""Shared plumbing for OpenAI-compatible endpoints: key lookup, reachability probe, async client,
running coroutines from sync code, and keeping the key out of every message.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import httpx

from krill.errors import KrillError
from krill.retry import TransientError, async_retrying, status_of
from krill.secrets import mask_url

if TYPE_CHECKING:
    from krill.config import EndpointConfig

DEFAULT_API_BASE = "https://api.openai.com/v1"
T = TypeVar("T")


def is_local_url(url: str) -> bool:
    """Loopback / private-network hosts (vLLM, llama.cpp, Ollama on the LAN) need no API key."""
    host = (urlparse(url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith(".local"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified


def redact(text: str, key: str | None) -> str:
    """`text` with the API key (if any) masked; applied to every error that leaves this package."""
    return text.replace(key, "****") if key and len(key) >= 4 else text


class Endpoint:
    """Where to send requests and with which key (read only from the env var named in config)."""

    def __init__(self, cfg: EndpointConfig, *, where: str):
        self.base_url = (cfg.api_base or DEFAULT_API_BASE).rstrip("/")
        self.shown_url = mask_url(self.base_url)  # what messages say: credentials in the URL masked
        self.where, self.timeout, self.model = where, float(cfg.timeout), cfg.model
        key = cfg.api_key()
        if not key and not is_local_url(self.base_url):
            raise KrillError(
                f"no API key for {self.shown_url}: set the environment variable {cfg.api_key_env}",
                where=f"{where}.api_key_env",
            )
        self.key = key or "not-needed"  # local servers ignore it, the client insists on one
        # first backoff step in seconds (doubles per retry); tests and benchmarks shorten it
        self.retry_initial = float(os.environ.get("KRILL_RETRY_INITIAL", "0.5"))

    def redact(self, text: str) -> str:
        return redact(text, self.key).replace(self.base_url, self.shown_url)

    def probe(self) -> None:
        """Fail fast with one clear line when the server is down or rejects the key."""
        try:
            r = httpx.get(
                f"{self.base_url}/models",
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=min(self.timeout, 10.0),
            )
        except httpx.HTTPError as exc:
            reason = self.redact(str(exc) or type(exc).__name__)
            raise KrillError(
                f"cannot reach {self.shown_url} ({reason})", where=f"{self.where}.api_base"
            ) from None
        if r.status_code in (401, 403):
            raise KrillError(
                f"{self.shown_url} rejected the API key (HTTP {r.status_code})",
                where=f"{self.where}.api_key_env",
            )

    def client(self):
        """A fresh AsyncOpenAI client (bound to the running loop); krill's own retry policy, not the client's."""
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url=self.base_url, api_key=self.key, timeout=self.timeout, max_retries=0)


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, in a fresh thread if a loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="krill-async", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@dataclass
class ApiStats:
    """Counters for one client (read them after a run; `as_dict()` for logs)."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    cache_hits: int = 0
    invalid: int = 0  # answers still invalid after the re-ask (returned as None)
    reasks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class ChatAnswer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[float] | None
    stop_reason: str | int | None = None  # vLLM: None = EOS, else the stop string/token hit
    stop_reason_known: bool = False  # the server sent the field (OpenAI's API does not)


def chat_params(model: str, max_tokens: int, temperature: float, top_p: float) -> dict[str, Any]:
    """Sampling arguments; OpenAI reasoning models (o1/o3/o4/gpt-5) take neither temperature nor max_tokens."""
    if re.match(r"^(o\d|gpt-5)", model):
        return {"max_completion_tokens": max_tokens}
    return {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}


async def chat_once(client, ep: Endpoint, stats: ApiStats, *, max_retries: int, **kwargs: Any) -> ChatAnswer:
    """One chat completion under krill's retry policy and a hard total deadline of `ep.timeout` per try.

    httpx's timeout is per read, so a server trickling bytes forever would never time out without
    the `wait_for` deadline.
    """

    def on_retry(_exc: BaseException) -> None:
        stats.retries += 1

    async for attempt in async_retrying(max_retries, initial=ep.retry_initial, on_retry=on_retry):
        with attempt:
            stats.requests += 1
            try:
                resp = await asyncio.wait_for(
                    client.chat.completions.create(model=ep.model, **kwargs), ep.timeout
                )
            except json.JSONDecodeError as exc:  # an empty or torn body: ask again
                raise TransientError(f"response body is not JSON ({exc.msg})") from None
            answer = _parse_chat(resp)
    stats.prompt_tokens += answer.prompt_tokens
    stats.completion_tokens += answer.completion_tokens
    return answer


def _parse_chat(resp: Any) -> ChatAnswer:
    try:
        choice = resp.choices[0]
        text = choice.message.content
        if not isinstance(text, str):
            raise TypeError("no message content")
        usage = getattr(resp, "usage", None)
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        return ChatAnswer(
            text=text,
            finish_reason=str(choice.finish_reason or "stop"),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            logprobs=[float(t.logprob) for t in content] if content else None,
            **_stop_reason(choice),
        )
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise TransientError(f"malformed chat response ({type(exc).__name__}: {exc})") from None


def _stop_reason(choice: Any) -> dict[str, Any]:
    """vLLM's `stop_reason` (an extra field of the choice) when the server sent one."""
    extra = getattr(choice, "model_extra", None) or {}
    if "stop_reason" not in extra:
        return {}
    reason = extra["stop_reason"]
    return {"stop_reason": reason if isinstance(reason, str | int) else None, "stop_reason_known": True}


def describe_error(exc: BaseException, ep: Endpoint) -> str:
    """One redacted line for a request that failed for good."""
    status = status_of(exc)
    head = f"HTTP {status}" if status else type(exc).__name__
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return ep.redact(f"{head}: {detail}" if detail else head)
