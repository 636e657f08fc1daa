"""Serve any registered env over HTTP with the Rust krill protocol (Starlette app, uvicorn server).

    POST /reset  {"task_id": str | null,  → observation, task_description, task_category,
                  "split"?: str}           available_actions, task_id, done=false, reward=0
                                            (split defaults to the one being served)
    POST /step   {"action": str}          → observation, reward, done, available_actions,
                                            task_description, task_category, won, valid
    POST /expert {}                       → {"action": the env expert's next action | null}
    POST /close  {}                       → ends the caller's session
    GET  /info?split=S                    → env, split, max_steps, task_ids
    GET  /health                          → status (no auth: liveness probes)

Every reply also carries `info`, the env's full info dict, so a client rebuilds it exactly.
Sessions (one env instance each) are addressed by an unguessable handle: `/reset` without an
`X-Session` header opens a new session and returns its handle as `session`; every later call (and
a reset of the same session) sends it back as `X-Session`, so no one who was not given the handle
can step, query or close that session. `session_handles=False` (`krill env serve
--client-id-sessions`) serves the Rust krill protocol instead: one session per `X-Client-Id`, a
shared default session without it. Sessions are capped (least recently used idle one evicted, 429
if all are busy). Env calls are blocking: they run in the threadpool under a per-session lock, so
concurrent requests on one session serialise. A retried request carrying the same `X-Request-Id`
as the session's last one, on the same endpoint, gets the cached reply instead of stepping twice.
Errors are JSON `{"error": message, "status": code}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from krill.envs.base import Env, make_env
from krill.envs.http_guard import LOOPBACK_NAMES, check_bind, is_loopback
from krill.envs.protocol import reset_reply, step_reply
from krill.errors import KrillError

log = logging.getLogger("krill.envs.server")

DEFAULT_CLIENT = "default"
_HANDLE_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
BODY_TIMEOUT = 10.0  # seconds to receive a request body once its headers are in
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:@+-]{1,128}$")


class ApiError(Exception):
    """A 4xx/5xx answer with a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class _Session:
    env: Env | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    active: bool = False  # an episode is in progress (reset, not yet done)
    closed: bool = False  # evicted or closed: a request that still holds it must not use it
    last_request_key: str | None = None
    last_reply: dict[str, Any] | None = None


class _Server:
    def __init__(
        self,
        env_name: str,
        split: str,
        cfg: Any,
        token: str | None,
        max_sessions: int,
        max_body: int,
        allowed_hosts: list[str] | None = None,
        body_timeout: float = BODY_TIMEOUT,
        session_handles: bool = True,
    ):
        if max_sessions < 1:
            raise KrillError(f"max_sessions must be at least 1, got {max_sessions}")
        self.env_name, self.split, self.cfg = env_name, split, cfg
        self.token, self.max_sessions, self.max_body = token, max_sessions, max_body
        self.body_timeout, self.session_handles = body_timeout, session_handles
        self.allowed_hosts = [h.lower() for h in allowed_hosts] if allowed_hosts is not None else None
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        self._meta: dict[str, dict[str, Any]] = {}
        self._meta_lock = asyncio.Lock()

    # -- request plumbing --------------------------------------------------------------------
    def check_host(self, request: Request) -> None:
        """The Host allow-list: a page on another site cannot reach a loopback server by DNS rebinding."""
        if self.allowed_hosts is None:
            return
        host = (request.headers.get("host") or "").lower()
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        if name not in self.allowed_hosts:
            raise ApiError(
                400, f"Host {host!r} is not served here (allowed: {', '.join(self.allowed_hosts)})"
            )

    def check_auth(self, request: Request) -> None:
        """The Host check, then the bearer token when one is configured."""
        self.check_host(request)
        if self.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(401, "missing or wrong token: send 'Authorization: Bearer <token>'")

    async def read_json(self, request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            # a browser page can POST text/plain cross-site without a preflight; JSON needs one
            raise ApiError(415, f"Content-Type must be application/json, got {ctype!r}")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise ApiError(413, f"request body of {length} bytes exceeds the limit of {self.max_body}")
        body = await self._read_body(request)
        if not body.strip():
            return {}
        try:
            data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise ApiError(400, "invalid JSON: body is not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"invalid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(422, f"body must be a JSON object, got {type(data).__name__}")
        return data

    async def _read_body(self, request: Request) -> bytearray:
        """The body, size-capped, within `body_timeout` seconds: a body shorter than its
        Content-Length would otherwise hold the request (and its session) forever."""
        body = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > self.max_body:
                    raise ApiError(413, f"request body exceeds the limit of {self.max_body} bytes")

        try:
            await asyncio.wait_for(read(), self.body_timeout)
        except TimeoutError:
            raise ApiError(408, f"request body not received within {self.body_timeout:g} s") from None
        return body

    # -- sessions ----------------------------------------------------------------------------
    async def get_or_create(self, client: str) -> _Session:
        sess = self.sessions.get(client)
        if sess is not None:
            self.sessions.move_to_end(client)
            return sess
        while len(self.sessions) >= self.max_sessions:
            await self._evict_one()
            if client in self.sessions:  # created by a concurrent request while we evicted
                return self.sessions[client]
        sess = self.sessions[client] = _Session()
        return sess

    async def _evict_one(self) -> None:
        victim = next((k for k, s in self.sessions.items() if not s.lock.locked()), None)
        if victim is None:
            raise ApiError(429, f"all {self.max_sessions} sessions are busy; retry later")
        sess = self.sessions.pop(victim)
        log.info("evicting idle session %r (limit %d)", victim, self.max_sessions)
        async with sess.lock:
            sess.closed = True
            if sess.env is not None:
                await run_in_threadpool(_safe_close, sess.env)

    def existing(self, client: str) -> _Session:
        sess = self.sessions.get(client)
        if sess is None:
            name = "session handle" if self.session_handles else f"session {client!r}"
            raise ApiError(
                404,
                f"unknown {name}: POST /reset first (idle sessions are evicted beyond {self.max_sessions})",
            )
        self.sessions.move_to_end(client)
        return sess

    async def close_session(self, client: str) -> None:
        sess = self.existing(client)
        self.sessions.pop(client, None)
        async with sess.lock:
            sess.closed = True
            if sess.env is not None:
                await run_in_threadpool(_safe_close, sess.env)

    async def close_all(self) -> None:
        for client in list(self.sessions):
            await self.close_session(client)

    async def env_call(self, sess: _Session, fn: Any, *args: Any) -> Any:
        """Run a blocking env call; an env crash drops that env (next reset builds a fresh one)."""
        try:
            return await run_in_threadpool(fn, *args)
        except KrillError as exc:
            raise ApiError(422, str(exc)) from None
        except Exception as exc:  # the env itself failed: report it, keep the server and session alive
            log.exception("environment %s failed", self.env_name)
            if sess.env is not None:
                await run_in_threadpool(_safe_close, sess.env)
            sess.env, sess.active = None, False
            raise ApiError(500, f"environment failed: {type(exc).__name__}: {exc}") from None

    async def meta(self, split: str) -> dict[str, Any]:
        async with self._meta_lock:
            if split not in self._meta:
                self._meta[split] = await run_in_threadpool(self._build_meta, split)
            return self._meta[split]

    def build_env(self, split: str) -> Env:
        return make_env(self.env_name, split, cfg=self.cfg)

    def _build_meta(self, split: str) -> dict[str, Any]:
        env = self.build_env(split)
        try:
            return {"env": env.name, "split": split, "max_steps": env.max_steps, "task_ids": env.task_ids()}
        finally:
            _safe_close(env)


# -- handlers ------------------------------------------------------------------------------------
def _session_key(request: Request, *, opening: bool = False) -> str:
    """The caller's session: its `X-Session` handle (a new one when `opening` without it), or with
    `session_handles=False` its `X-Client-Id`."""
    srv: _Server = request.app.state.server
    if not srv.session_handles:
        return _client_id(request)
    handle = request.headers.get("x-session")
    if handle is None:
        if opening:
            return secrets.token_urlsafe(24)
        raise ApiError(400, "missing X-Session header: send the session handle POST /reset returned")
    if not _HANDLE_RE.match(handle):
        raise ApiError(400, "bad X-Session header: send the session handle POST /reset returned")
    if opening and handle not in srv.sessions:
        srv.existing(handle)  # an evicted or made-up handle: the same 404 as on /step
    return handle


def _client_id(request: Request) -> str:
    client = request.headers.get("x-client-id")
    if client is None:
        return DEFAULT_CLIENT
    if not _CLIENT_ID_RE.match(client):
        raise ApiError(400, "bad X-Client-Id: use 1-128 characters from letters, digits and ._:@+-")
    return client


def _request_key(request: Request) -> str | None:
    """A retry's identity: its X-Request-Id on this endpoint (the same id on /step is another request)."""
    rid = request.headers.get("x-request-id")
    return f"{request.url.path} {rid}" if rid else None


def _cached(sess: _Session, request: Request) -> dict[str, Any] | None:
    key = _request_key(request)
    if key and key == sess.last_request_key and sess.last_reply is not None:
        return sess.last_reply
    return None


def _remember(sess: _Session, request: Request, reply: dict[str, Any]) -> dict[str, Any]:
    sess.last_request_key, sess.last_reply = _request_key(request), reply
    return reply


async def _reset(request: Request) -> JSONResponse:
    srv: _Server = request.app.state.server
    srv.check_auth(request)
    data = await srv.read_json(request)
    task_id = data.get("task_id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if task_id is not None and not isinstance(task_id, str):
        raise ApiError(422, f"field 'task_id' must be a string or null, got {type(task_id).__name__}")
    split = _split(data.get("split"), srv.split)
    key = _session_key(request, opening=True)
    sess = await srv.get_or_create(key)
    async with sess.lock:
        if sess.closed:
            raise ApiError(409, "session was evicted while waiting; POST /reset again")
        if (hit := _cached(sess, request)) is not None:
            return JSONResponse(hit)
        if sess.env is not None and sess.split != split:
            await run_in_threadpool(_safe_close, sess.env)
            sess.env = None
        if sess.env is None:
            sess.env = await srv.env_call(sess, srv.build_env, split)
            sess.split = split
        obs, info = await srv.env_call(sess, sess.env.reset, task_id)
        sess.active = True
        reply = reset_reply(obs, info, task_id)
        if srv.session_handles:
            reply["session"] = key
        return JSONResponse(_remember(sess, request, reply))


async def _step(request: Request) -> JSONResponse:
    srv: _Server = request.app.state.server
    srv.check_auth(request)
    data = await srv.read_json(request)
    if "action" not in data:
        raise ApiError(422, "missing field 'action'")
    action = data["action"]
    if not isinstance(action, str):
        raise ApiError(422, f"field 'action' must be a string, got {type(action).__name__}")
    sess = srv.existing(_session_key(request))
    async with sess.lock:
        if (hit := _cached(sess, request)) is not None:
            return JSONResponse(hit)
        _require_episode(sess)
        obs, reward, done, info = await srv.env_call(sess, sess.env.step, action)
        sess.active = not done
        return JSONResponse(_remember(sess, request, step_reply(obs, reward, done, info)))


async def _expert(request: Request) -> JSONResponse:
    srv: _Server = request.app.state.server
    srv.check_auth(request)
    await srv.read_json(request)
    sess = srv.existing(_session_key(request))
    async with sess.lock:
        _require_episode(sess)
        action = await srv.env_call(sess, sess.env.expert_action)
    return JSONResponse({"action": action})


async def _close(request: Request) -> JSONResponse:
    srv: _Server = request.app.state.server
    srv.check_auth(request)
    await srv.read_json(request)
    await srv.close_session(_session_key(request))
    return JSONResponse({"closed": True})


async def _info(request: Request) -> JSONResponse:
    srv: _Server = request.app.state.server
    srv.check_auth(request)
    split = _split(request.query_params.get("split"), srv.split)
    try:
        return JSONResponse(await srv.meta(split))
    except KrillError as exc:  # an unknown split, as /reset answers it: the request is wrong, not the server
        raise ApiError(422, f"cannot build environment {srv.env_name!r}: {exc}") from None


async def _health(request: Request) -> JSONResponse:
    srv: _Server = request.app.state.server
    srv.check_host(request)  # liveness needs no token
    return JSONResponse(
        {"status": "ok", "env": srv.env_name, "split": srv.split, "sessions": len(srv.sessions)}
    )


def _split(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", value):
        raise ApiError(422, "field 'split' must be a split name such as 'train' or 'valid_unseen'")
    return value


def _require_episode(sess: _Session) -> None:
    if sess.closed:
        raise ApiError(409, "session was closed; POST /reset to start a new one")
    if sess.env is None or not sess.active:
        raise ApiError(
            409, "no episode in progress in this session (not reset yet, or done): POST /reset first"
        )


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _safe_close(env: Env) -> None:
    try:
        env.close()
    except Exception:  # closing a broken env must not break the server
        log.exception("closing an environment failed")


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.message, "status": exc.status}, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail, "status": exc.status_code}, status_code=exc.status_code)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return JSONResponse({"error": f"internal error: {type(exc).__name__}", "status": 500}, status_code=500)


def create_app(
    env_name: str,
    split: str = "train",
    cfg: Any = None,
    token: str | None = None,
    max_sessions: int = 64,
    max_body: int = 64_000,
    allowed_hosts: list[str] | None = None,
    body_timeout: float = BODY_TIMEOUT,
    session_handles: bool = True,
) -> Starlette:
    """A Starlette app serving `env_name` (any registered env) with one session per client id.

    `allowed_hosts`: Host header names accepted (None = any); `serve` sets the loopback names when
    bound to loopback, so a web page cannot reach the server through DNS rebinding.
    """
    srv = _Server(
        env_name,
        split,
        cfg,
        token or None,
        max_sessions,
        max_body,
        allowed_hosts,
        body_timeout,
        session_handles,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await srv.close_all()

    routes = [
        Route("/reset", _reset, methods=["POST"]),
        Route("/step", _step, methods=["POST"]),
        Route("/expert", _expert, methods=["POST"]),
        Route("/close", _close, methods=["POST"]),
        Route("/info", _info, methods=["GET"]),
        Route("/health", _health, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.server = srv
    return app


# -- serving -------------------------------------------------------------------------------------
def serve(
    env_name: str,
    split: str = "train",
    cfg: Any = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    max_sessions: int = 64,
    max_body: int = 64_000,
    log_level: str = "info",
    session_handles: bool = True,
) -> None:
    """Build one env up front (fails fast, warms caches such as generated games), then serve forever."""
    import uvicorn

    check_bind(host, token)
    _safe_close(make_env(env_name, split, cfg=cfg))
    hosts = LOOPBACK_NAMES if is_loopback(host) else None
    app = create_app(
        env_name,
        split,
        cfg,
        token=token,
        max_sessions=max_sessions,
        max_body=max_body,
        allowed_hosts=hosts,
        session_handles=session_handles,
    )
    # limit_concurrency bounds open connections so a flood cannot exhaust threads or memory; the guarded
    # protocol closes connections whose headers stall and caps each client's share (http_guard.py).
    from krill.envs.http_guard import guarded_protocol

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        limit_concurrency=max(64, 4 * max_sessions),
        http=guarded_protocol(),
    )
