"""The env server's sessions: one env each, who may use it, and the cap on how many stay open.

Ownership: with handles (the default) a session is reached only through the unguessable handle
`/reset` returned, sent back as `X-Session`, so no one who was not given it can step, query or close
it. Without handles (`krill env serve --client-id-sessions`, the Rust krill protocol) a session is
the caller's `X-Client-Id`, or a shared default session without one. Beyond `max_sessions` the least
recently used idle session is closed; when all are busy the caller gets 429. A session remembers
its last reply, so a retried request (same `X-Request-Id`, same endpoint) is answered from it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from krill.envs.base import Env
from krill.envs.wire import UNKNOWN_SESSION, ApiError
from krill.errors import KrillError

log = logging.getLogger(__name__)

DEFAULT_CLIENT = "default"
_HANDLE_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:@+-]{1,128}$")


@dataclass
class Session:
    env: Env | None = None
    split: str = ""  # the split `env` was built for
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    active: bool = False  # an episode is in progress (reset, not yet done)
    closed: bool = False  # evicted or closed: a request that still holds it must not use it
    last_request_key: str | None = None
    last_reply: dict[str, Any] | None = None

    def cached(self, request_key: str | None) -> dict[str, Any] | None:
        """The reply to this request if it is a retry of the last one."""
        if request_key and request_key == self.last_request_key and self.last_reply is not None:
            return self.last_reply
        return None

    def remember(self, request_key: str | None, reply: dict[str, Any]) -> dict[str, Any]:
        self.last_request_key, self.last_reply = request_key, reply
        return reply

    def require_episode(self) -> Env:
        """The env of the episode in progress (409 when there is none)."""
        if self.closed:
            raise ApiError(409, "session was closed; POST /reset to start a new one")
        if self.env is None or not self.active:
            raise ApiError(
                409, "no episode in progress in this session (not reset yet, or done): POST /reset first"
            )
        return self.env


class Sessions:
    """The open sessions by key, least recently used first; see the module docstring."""

    def __init__(self, max_sessions: int, handles: bool = True):
        if max_sessions < 1:
            raise KrillError(f"max_sessions must be at least 1, got {max_sessions}")
        self.max_sessions, self.handles = max_sessions, handles
        self._open: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def key(self, handle: str | None, client_id: str | None, *, opening: bool = False) -> str:
        """The caller's session key: its handle (a new one when `opening` without one), or without
        handles its client id."""
        if not self.handles:
            return _client_key(client_id)
        if handle is None:
            if opening:
                return secrets.token_urlsafe(24)
            raise ApiError(400, "missing X-Session header: send the session handle POST /reset returned")
        if not _HANDLE_RE.match(handle):
            raise ApiError(400, "bad X-Session header: send the session handle POST /reset returned")
        if opening and handle not in self._open:
            self.get(handle)  # an evicted or made-up handle: the same 404 as on /step
        return handle

    async def open(self, key: str) -> Session:
        """The session under `key`, created (evicting the least recently used idle one) if new."""
        sess = self._open.get(key)
        if sess is not None:
            self._open.move_to_end(key)
            return sess
        while len(self._open) >= self.max_sessions:
            await self._evict_one()
            if key in self._open:  # created by a concurrent request while we evicted
                return self._open[key]
        sess = self._open[key] = Session()
        return sess

    def get(self, key: str) -> Session:
        """An open session (404 when unknown, e.g. evicted)."""
        sess = self._open.get(key)
        if sess is None:
            name = "handle" if self.handles else repr(key)
            raise ApiError(
                404,
                f"{UNKNOWN_SESSION} {name}: POST /reset first (idle sessions are evicted beyond "
                f"{self.max_sessions})",
            )
        self._open.move_to_end(key)
        return sess

    async def close(self, key: str) -> None:
        await _shut(self._open.pop(key, None) or self.get(key))

    async def close_all(self) -> None:
        while self._open:
            await _shut(self._open.popitem(last=False)[1])

    async def _evict_one(self) -> None:
        victim = next((k for k, s in self._open.items() if not s.lock.locked()), None)
        if victim is None:
            raise ApiError(429, f"all {self.max_sessions} sessions are busy; retry later")
        log.info("evicting idle session %r (limit %d)", victim, self.max_sessions)
        await _shut(self._open.pop(victim))


async def _shut(sess: Session) -> None:
    """Close a session's env once no request is using it."""
    async with sess.lock:
        sess.closed = True
        if sess.env is not None:
            await close_env(sess.env)


def _client_key(client_id: str | None) -> str:
    if client_id is None:
        return DEFAULT_CLIENT
    if not _CLIENT_ID_RE.match(client_id):
        raise ApiError(400, "bad X-Client-Id: use 1-128 characters from letters, digits and ._:@+-")
    return client_id


async def close_env(env: Env) -> None:
    """Close an env off the event loop; a broken env's close must not break the server."""
    await run_in_threadpool(close_quietly, env)


def close_quietly(env: Env) -> None:
    try:
        env.close()
    except Exception:
        log.exception("closing an environment failed")
