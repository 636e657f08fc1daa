"""A local OpenAI-compatible server for tests and benchmarks, with deterministic fault injection.

    def answer(messages):                      # real computation supplied by the test
        return json.dumps({"skills": [...]})

    with FakeOpenAIServer(answer, faults=["429", None, "500", "timeout"], delay=0.05) as srv:
        cfg = TeacherConfig(backend="llm", model="fake", api_base=srv.base_url, timeout=1)
        ...
        assert srv.stats["faults"]["429"] == 1

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (honours `stop` like real servers: the
answer is cut before the first stop string; `max_tokens` ≈ 4 chars per token), `POST /v1/embeddings`
(vectors from `embed_handler(texts)`, default a 64-d `HashEmbedder`).

Faults, by name: request i (chat or embeddings, in arrival order) gets `faults[i]` (None = behave), later
requests get a random fault from `fail_kinds` with probability `fail_rate` (seeded). Kinds:
  "429"      rate limited, with `Retry-After: <retry_after>` seconds
  "500", "503"  server error
  "timeout"  answers only after `hang_s` seconds (past any sane client timeout)
  "reset"    sends headers and part of the body, then drops the connection
  "empty"    200 with an empty body
  "nonjson"  200 with an HTML page
  "badshape" 200 with JSON that is not a completion (`{"result": "ok"}`)
  "garbage"  a well-formed completion whose text is prose, not the handler's answer
  "long"     a completion of `long_chars` characters, ignoring max_tokens
  "trickle"  a body that dribbles one byte every 0.1 s and never ends
`srv.stats` counts requests, answered and faults by kind; `srv.calls` keeps each request's path, body
and Authorization header. A handler that raises answers HTTP 500 (the client retries it).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

FAULT_KINDS = (
    "429",
    "500",
    "503",
    "timeout",
    "reset",
    "empty",
    "nonjson",
    "badshape",
    "garbage",
    "long",
    "trickle",
)
Handler = Callable[[list[dict[str, Any]]], str]


class FakeOpenAIServer:
    """Context manager serving an OpenAI-compatible API on 127.0.0.1 (free port) from a thread."""

    def __init__(
        self,
        handler: Handler,
        *,
        faults: list[str | None] | None = None,
        fail_rate: float = 0.0,
        fail_kinds: tuple[str, ...] = ("429", "500"),
        delay: float = 0.0,
        retry_after: float = 0.1,
        hang_s: float = 30.0,
        long_chars: int = 1_000_000,
        embed_handler: Callable[[list[str]], list[list[float]]] | None = None,
        api_key: str | None = None,
        seed: int = 0,
    ):
        for kind in [*(f for f in faults or [] if f), *(fail_kinds if fail_rate else ())]:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        self.handler, self.faults, self.fail_rate, self.fail_kinds = (
            handler,
            list(faults or []),
            fail_rate,
            fail_kinds,
        )
        self.delay, self.retry_after, self.hang_s, self.long_chars = delay, retry_after, hang_s, long_chars
        self.embed_handler, self.api_key = embed_handler, api_key
        self.stats: dict[str, Any] = {"requests": 0, "answered": 0, "faults": Counter()}
        self.calls: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = self._thread = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAIServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="critical", access_log=False, timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # -- app ---------------------------------------------------------------------------------------
    def _app(self):
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )

    def _next_fault(self, path: str, body: Any, auth: str) -> str | None:
        with self._lock:
            i = self.stats["requests"]
            self.stats["requests"] += 1
            self.calls.append({"path": path, "body": body, "auth": auth})
            if i < len(self.faults):
                fault = self.faults[i]
            elif self.fail_rate and self._rng.random() < self.fail_rate:
                fault = self._rng.choice(self.fail_kinds)
            else:
                fault = None
            if fault:
                self.stats["faults"][fault] += 1
            return fault

    async def _models(self, request):
        from starlette.responses import JSONResponse

        if (denied := self._check_key(request)) is not None:
            return denied
        return JSONResponse(
            {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "krill"}]}
        )

    def _check_key(self, request):
        from starlette.responses import JSONResponse

        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            err = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}}
            return JSONResponse(err, status_code=401)
        return None

    async def _read(self, request) -> tuple[Any, Any]:
        from starlette.responses import JSONResponse

        if (denied := self._check_key(request)) is not None:
            return None, denied
        try:
            return await request.json(), None
        except ValueError:
            return None, JSONResponse({"error": {"message": "body is not JSON"}}, status_code=400)

    async def _admit(self, request, kind: str):
        """(body, fault, early response): read the body, draw this request's fault, play transport faults
        and the configured delay; a non-None early response is the whole answer."""
        body, err = await self._read(request)
        if err is not None:
            return None, None, err
        fault = self._next_fault(kind, body, request.headers.get("authorization", ""))
        if fault and (resp := await self._transport_fault(fault, request)) is not None:
            return body, fault, resp
        if self.delay:
            await asyncio.sleep(self.delay)
        return body, fault, None

    async def _chat(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        body, fault, early = await self._admit(request, "chat")
        if early is not None:
            return early
        messages = body.get("messages", [])
        if fault == "garbage":
            text = "Sure! Here is what I think about your request, in prose rather than the format you asked for."
        elif fault == "long":
            text = "word " * (self.long_chars // 5)
        else:
            text = await run_in_threadpool(self.handler, messages)
        text, finish = _apply_limits(text, body, ignore_max_tokens=fault == "long")
        with self._lock:
            self.stats["answered"] += 1
        return JSONResponse(_completion(body, text, finish, messages))

    async def _embeddings(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        body, fault, early = await self._admit(request, "embeddings")
        if early is not None:
            return early
        texts = body.get("input", [])
        texts = [texts] if isinstance(texts, str) else list(texts)
        vecs = await run_in_threadpool(self._embed, texts)
        with self._lock:
            self.stats["answered"] += 1
        data = [
            {"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
            for i, v in enumerate(vecs)
        ]
        tokens = sum(len(t) // 4 + 1 for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "fake"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if self.embed_handler is not None:
            return self.embed_handler(texts)
        from krill.models.embedder import HashEmbedder

        return HashEmbedder(64).embed(texts).tolist()

    async def _transport_fault(self, fault: str, request):
        """A response for faults that break the HTTP exchange itself; None for content faults."""
        from starlette.responses import JSONResponse, Response, StreamingResponse

        if fault == "429":
            return JSONResponse(
                {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                status_code=429,
                headers={"Retry-After": f"{self.retry_after:g}"},
            )
        if fault in ("500", "503"):
            return JSONResponse({"error": {"message": "The server had an error"}}, status_code=int(fault))
        if fault == "timeout":
            end = time.monotonic() + self.hang_s
            while time.monotonic() < end and not self._stopping.is_set():
                if await request.is_disconnected():  # the client gave up: nothing left to answer
                    return Response(b"", status_code=499)
                await asyncio.sleep(0.05)
            return None  # a very late, otherwise normal answer
        if fault == "empty":
            return Response(b"", status_code=200, media_type="application/json")
        if fault == "nonjson":
            return Response(
                "<html><body>502 Bad Gateway</body></html>", status_code=200, media_type="text/html"
            )
        if fault == "badshape":
            return JSONResponse({"result": "ok"})
        if fault == "reset":
            return _DroppedResponse()
        if fault == "trickle":
            return StreamingResponse(self._dribble(), media_type="application/json")
        return None

    async def _dribble(self):
        yield b'{"id": "x", "choices": ['
        while not self._stopping.is_set():
            await asyncio.sleep(0.1)
            yield b" "


class _DroppedResponse:
    """Promises 1000 bytes, sends 10, then returns: uvicorn closes the connection mid-body."""

    async def __call__(self, scope, receive, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "x"', "more_body": True})


def _apply_limits(text: str, body: dict[str, Any], *, ignore_max_tokens: bool) -> tuple[str, str]:
    """Cut at the first stop string (excluded, like OpenAI) and at max_tokens (≈ 4 chars per token)."""
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    if cuts:
        return text[: min(cuts)], "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit and not ignore_max_tokens and len(text) > 4 * int(limit):
        return text[: 4 * int(limit)], "length"
    return text, "stop"


def _completion(
    body: dict[str, Any], text: str, finish: str, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
    completion_tokens = len(text) // 4 + 1
    return {
        "id": f"chatcmpl-{random.getrandbits(48):x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def json_handler(make: Callable[[list[dict[str, Any]]], Any]) -> Handler:
    """Wrap a function returning a Python value into a handler that answers it as JSON text."""
    return lambda messages: json.dumps(make(messages))
