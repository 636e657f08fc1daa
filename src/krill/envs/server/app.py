"""The env server's Starlette app: its routes, and the checks every request passes first.

Each route is an `@endpoint` handler: the decorator finds the server, checks the Host allow-list and
the bearer token, reads the JSON body (type, size and time capped), and sends the dict the handler
returns. Env calls are blocking: they run in the threadpool under the session's lock, so concurrent
requests on one session serialise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from krill.envs.base import Env, make_env
from krill.envs.server.sessions import Session, Sessions, close_env, close_quietly
from krill.envs.wire import (
    CLIENT_HEADER,
    REQUEST_ID_HEADER,
    SESSION_HEADER,
    ApiError,
    read_reset_request,
    read_split,
    read_step_request,
    reset_reply,
    step_reply,
)
from krill.errors import KrillError

log = logging.getLogger(__name__)

BODY_TIMEOUT = 10.0  # seconds to receive a request body once its headers are in


class _Server:
    """What the routes share: the served env, the request limits and the sessions."""

    def __init__(
        self,
        env_name: str,
        split: str,
        cfg: Any,
        token: str | None,
        sessions: Sessions,
        max_body: int,
        allowed_hosts: list[str] | None,
        body_timeout: float,
    ):
        self.env_name, self.split, self.cfg = env_name, split, cfg
        self.token, self.sessions, self.max_body, self.body_timeout = token, sessions, max_body, body_timeout
        self.allowed_hosts = [h.lower() for h in allowed_hosts] if allowed_hosts is not None else None
        self._meta: dict[str, dict[str, Any]] = {}
        self._meta_lock = asyncio.Lock()

    def session_key(self, request: Request, *, opening: bool = False) -> str:
        headers = request.headers
        return self.sessions.key(headers.get(SESSION_HEADER), headers.get(CLIENT_HEADER), opening=opening)

    def build_env(self, split: str) -> Env:
        return make_env(self.env_name, split, cfg=self.cfg)

    async def env_call(self, sess: Session, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking env call; an env crash drops that env (the next reset builds a fresh one)."""
        try:
            return await run_in_threadpool(fn, *args)
        except KrillError as exc:  # the message, not the server's file paths
            raise ApiError(422, exc.message + (f" ({exc.where})" if exc.where else "")) from None
        except Exception as exc:  # the env itself failed: report it, keep the server and session alive
            log.exception("environment %s failed", self.env_name)
            if sess.env is not None:
                await close_env(sess.env)
            sess.env, sess.active = None, False
            raise ApiError(500, f"environment failed: {type(exc).__name__}: {exc}") from None

    async def meta(self, split: str) -> dict[str, Any]:
        """/info's answer, built once per split."""
        async with self._meta_lock:
            if split not in self._meta:
                self._meta[split] = await run_in_threadpool(self._build_meta, split)
            return self._meta[split]

    def _build_meta(self, split: str) -> dict[str, Any]:
        env = self.build_env(split)
        try:
            return {"env": env.name, "split": split, "max_steps": env.max_steps, "task_ids": env.task_ids()}
        finally:
            close_quietly(env)


# -- what every request passes first ---------------------------------------------------------------
def check_host(srv: _Server, request: Request) -> None:
    """The Host allow-list: a page on another site cannot reach a loopback server by DNS rebinding."""
    if srv.allowed_hosts is None:
        return
    host = (request.headers.get("host") or "").lower()
    name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
    if name not in srv.allowed_hosts:
        raise ApiError(400, f"Host {host!r} is not served here (allowed: {', '.join(srv.allowed_hosts)})")


def check_token(srv: _Server, request: Request) -> None:
    if srv.token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), srv.token.encode()):
        raise ApiError(401, "missing or wrong token: send 'Authorization: Bearer <token>'")


async def read_json(srv: _Server, request: Request) -> dict[str, Any]:
    """The body as a JSON object ({} when empty)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        # a browser page can POST text/plain cross-site without a preflight; JSON needs one
        raise ApiError(415, f"Content-Type must be application/json, got {ctype!r}")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > srv.max_body:
        raise ApiError(413, f"request body of {length} bytes exceeds the limit of {srv.max_body}")
    body = await _read_body(srv, request)
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


async def _read_body(srv: _Server, request: Request) -> bytearray:
    """The body, size-capped, within `body_timeout` seconds: a body shorter than its
    Content-Length would otherwise hold the request (and its session) forever."""
    body = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > srv.max_body:
                raise ApiError(413, f"request body exceeds the limit of {srv.max_body} bytes")

    try:
        await asyncio.wait_for(read(), srv.body_timeout)
    except TimeoutError:
        raise ApiError(408, f"request body not received within {srv.body_timeout:g} s") from None
    return body


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


Handler = Callable[[_Server, Request, dict[str, Any]], Awaitable[dict[str, Any]]]


def endpoint(*, token: bool = True, body: bool = True) -> Callable[[Handler], Callable]:
    """A route's preamble, once: find the server, check the Host and (when `token`) the bearer token,
    read the JSON body (when `body`); the handler gets (server, request, body) and returns the reply."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
        @functools.wraps(handler)
        async def route(request: Request) -> JSONResponse:
            srv: _Server = request.app.state.server
            check_host(srv, request)
            if token:
                check_token(srv, request)
            data = await read_json(srv, request) if body else {}
            return JSONResponse(await handler(srv, request, data))

        return route

    return wrap


def _request_key(request: Request) -> str | None:
    """A retry's identity: its X-Request-Id on this endpoint (the same id on /step is another request)."""
    rid = request.headers.get(REQUEST_ID_HEADER)
    return f"{request.url.path} {rid}" if rid else None


# -- routes ------------------------------------------------------------------------------------------
@endpoint()
async def _reset(srv: _Server, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    task_id, split = read_reset_request(data, srv.split)
    key = srv.session_key(request, opening=True)
    sess = await srv.sessions.open(key)
    async with sess.lock:
        if sess.closed:
            raise ApiError(409, "session was evicted while waiting; POST /reset again")
        if (hit := sess.cached(_request_key(request))) is not None:
            return hit
        if sess.env is None or sess.split != split:
            # built before the old env goes: a bad split is refused with the current episode intact
            new = await srv.env_call(sess, srv.build_env, split)
            if sess.env is not None:
                await close_env(sess.env)
            sess.env, sess.split = new, split
        obs, info = await srv.env_call(sess, sess.env.reset, task_id)
        sess.active = True
        reply = reset_reply(obs, info, task_id, session=key if srv.sessions.handles else None)
        return sess.remember(_request_key(request), reply)


@endpoint()
async def _step(srv: _Server, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    action = read_step_request(data)
    sess = srv.sessions.get(srv.session_key(request))
    async with sess.lock:
        if (hit := sess.cached(_request_key(request))) is not None:
            return hit
        obs, reward, done, info = await srv.env_call(sess, sess.require_episode().step, action)
        sess.active = not done
        return sess.remember(_request_key(request), step_reply(obs, reward, done, info))


@endpoint()
async def _expert(srv: _Server, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    sess = srv.sessions.get(srv.session_key(request))
    async with sess.lock:
        action = await srv.env_call(sess, sess.require_episode().expert_action)
    return {"action": action}


@endpoint()
async def _close(srv: _Server, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    await srv.sessions.close(srv.session_key(request))
    return {"closed": True}


@endpoint(body=False)
async def _info(srv: _Server, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    split = read_split(request.query_params.get("split"), srv.split)
    try:
        return await srv.meta(split)
    except KrillError as exc:  # an unknown split, as /reset answers it: the request is wrong, not the server
        raise ApiError(422, f"cannot build environment {srv.env_name!r}: {exc.message}") from None


@endpoint(token=False, body=False)  # liveness needs no token; how busy the server is, does
async def _health(srv: _Server, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {"status": "ok", "env": srv.env_name, "split": srv.split}
    try:
        check_token(srv, request)
        reply["sessions"] = len(srv.sessions)
    except ApiError:
        pass
    return reply


# -- errors -----------------------------------------------------------------------------------------
async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.reply(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(ApiError(exc.status_code, exc.detail).reply(), status_code=exc.status_code)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return JSONResponse(ApiError(500, f"internal error: {type(exc).__name__}").reply(), status_code=500)


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
    """A Starlette app serving `env_name` (any registered env), one env per session.

    `allowed_hosts`: Host header names accepted (None = any); `serve` sets the loopback names when
    bound to loopback, so a web page cannot reach the server through DNS rebinding.
    """
    if token is not None and token and not token.strip():
        raise KrillError("the env server's token is blank: no request could authenticate", where="--token")
    sessions = Sessions(max_sessions, handles=session_handles)
    srv = _Server(env_name, split, cfg, token or None, sessions, max_body, allowed_hosts, body_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sessions.close_all()

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
