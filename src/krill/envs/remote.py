"""`RemoteEnv`: the Env protocol over HTTP, the client of `krill env serve` (registered as "remote").

Each instance is its own server session: the handle `/reset` returns is sent back as `X-Session`
(servers without handles, such as Rust krill's, address sessions by the `X-Client-Id` sent too).
The bodies, replies and headers are `krill.envs.wire`'s, the same module the server uses.
Connection errors, timeouts, 429 and 502/503/504 are retried under krill's one retry policy
(`krill.retry`: exponential backoff with jitter, `Retry-After` honoured); every logical call carries
one `X-Request-Id`, so a retried step the server already ran returns the cached reply instead of
stepping twice. Anything still failing becomes a one-line `KrillError`.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx

from krill.envs import wire
from krill.envs.base import Obs, StepResult, register_env
from krill.errors import KrillError
from krill.retry import retrying as retry_policy
from krill.secrets import mask_url

_RETRY_STATUS = {429, 502, 503, 504}
DEFAULT_MAX_STEPS = 50  # used only when a server has no /info (e.g. a Rust krill server)


class EnvUnavailable(KrillError):
    """The server cannot be reached or lost the session: the episode fails, the run goes on."""


class SessionLost(EnvUnavailable):
    """The server no longer knows this client's session (evicted, restarted)."""


class _Retryable(Exception):
    """A busy/overloaded answer; `status_code` is what `krill.retry` reads to retry it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status_code = status


class RemoteEnv:
    """An env served by another process or machine; see the module docstring for the protocol."""

    def __init__(
        self,
        url: str,
        client_id: str | None = None,
        timeout: float = 30,
        retries: int = 3,
        token: str | None = None,
        split: str | None = None,
        backoff: float = 0.2,
    ):
        if not url or not url.startswith(("http://", "https://")):
            raise KrillError(f"env server URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.client_id = client_id or f"krill-{uuid.uuid4().hex[:16]}"
        self._base_id, self._sessions_used, self._stale = self.client_id, 1, False
        self.timeout = timeout
        self.split = split
        self.retries, self.backoff = max(0, retries), backoff
        headers = {wire.CLIENT_HEADER: self.client_id}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        meta = self._info()
        self.name: str = meta.get("env", "remote")
        self.max_steps: int = int(meta.get("max_steps", DEFAULT_MAX_STEPS))
        self._task_ids: list[str] = [str(t) for t in meta.get("task_ids", [])]

    def task_ids(self) -> list[str]:
        """The served split's task ids (empty if the server does not list them)."""
        return list(self._task_ids)

    def reset(self, task_id: str | None = None) -> Obs:
        if self._stale:  # the old session may still be stuck in a hung env call: start a fresh one
            self._new_session()
        body = wire.reset_request(task_id, self.split)
        try:
            r = self._call("POST", "/reset", body)
        except SessionLost:
            if self._http.headers.pop(wire.SESSION_HEADER, None) is None:
                raise
            self._stale = False
            r = self._call("POST", "/reset", body)  # the server evicted our session: open a new one
        obs, session = wire.read_reset_reply(r, task_id)
        if session is not None:  # krill's server: the session's handle for later calls
            self._http.headers[wire.SESSION_HEADER] = session
        return obs

    def step(self, action: str) -> StepResult:
        return wire.read_step_reply(self._call("POST", "/step", wire.step_request(action)))

    def expert_action(self) -> str | None:
        """The server-side env's expert action (None when the server has no expert)."""
        try:
            return self._call("POST", "/expert", {}).get("action")
        except _NotFound:
            return None

    def close(self) -> None:
        try:
            self._call("POST", "/close", {}, attempts=1)
        except KrillError:
            pass  # the session may be gone already (evicted, server restarted): nothing to free
        self._http.close()

    def _new_session(self) -> None:
        self.client_id = f"{self._base_id}.{self._sessions_used}"
        self._sessions_used += 1
        self._http.headers[wire.CLIENT_HEADER] = self.client_id
        self._http.headers.pop(wire.SESSION_HEADER, None)
        self._stale = False

    # -- HTTP ----------------------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        try:
            params = {"split": self.split} if self.split else None
            return self._call("GET", "/info", None, params=params)
        except _NotFound:  # servers without /info (the Rust krill protocol) still work
            return {}

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        params: dict[str, str] | None = None,
        attempts: int | None = None,
    ) -> dict[str, Any]:
        headers = {wire.REQUEST_ID_HEADER: uuid.uuid4().hex}
        max_retries = self.retries if attempts is None else attempts - 1
        retrying = retry_policy(max_retries, initial=self.backoff, max_wait=10)
        try:
            return retrying(self._send, method, path, body, params, headers)
        except EnvUnavailable:
            self._stale = True
            raise
        except httpx.TimeoutException as exc:
            self._stale = True
            n = retrying.statistics.get("attempt_number", 1)
            raise EnvUnavailable(
                f"env server did not answer within {self.timeout:g}s ({n} attempts, {type(exc).__name__})",
                path=self.url + path,
            ) from None
        except httpx.TransportError as exc:
            self._stale = True
            raise EnvUnavailable(
                f"env server unreachable after {retrying.statistics.get('attempt_number', 1)} attempts "
                f"({type(exc).__name__}: {exc}); is `krill env serve` running?",
                path=self.url + path,
            ) from None
        except _Retryable as exc:
            self._stale = True
            raise EnvUnavailable(f"env server kept failing: {exc}", path=self.url + path) from None

    def _send(
        self, method: str, path: str, body: Any, params: dict[str, str] | None, headers: dict[str, str]
    ) -> dict[str, Any]:
        resp = self._http.request(method, path, json=body, params=params, headers=headers)
        message = _error_message(resp)
        if resp.status_code in _RETRY_STATUS:
            raise _Retryable(resp.status_code, f"HTTP {resp.status_code}: {message}")
        if resp.status_code == 404 and wire.UNKNOWN_SESSION in message:
            raise SessionLost(
                f"the env server lost this session (restarted, or evicted it): {message}",
                path=self.url + path,
            )
        if resp.status_code == 404:
            raise _NotFound(f"HTTP 404: {message}", path=self.url + path)
        if resp.status_code >= 400:
            raise KrillError(f"HTTP {resp.status_code}: {message}", path=self.url + path)
        try:
            data = resp.json()
        except ValueError:
            raise KrillError("env server answered with non-JSON", path=self.url + path) from None
        if not isinstance(data, dict):
            raise KrillError("env server answered with JSON that is not an object", path=self.url + path)
        return data


class _NotFound(KrillError):
    """404: an endpoint the server lacks, or a session it no longer knows (evicted, restarted)."""


def _error_message(resp: httpx.Response) -> str:
    if resp.status_code < 400:
        return ""
    try:
        message = wire.read_error(resp.json())
    except ValueError:
        message = None
    return message[:500] if message is not None else resp.text[:200] or resp.reason_phrase


@register_env("remote")
def make_remote_env(split: str = "train", cfg: Any = None, url: str | None = None, **kw: Any) -> RemoteEnv:
    """Any env served by `krill env serve` (URL from --env-url / env.url, token from $KRILL_ENV_TOKEN)."""
    env_cfg = getattr(cfg, "env", None)
    url = url or getattr(env_cfg, "url", None)
    if not url:
        raise KrillError("the remote env needs a server URL: pass --env-url or set env.url")
    if "token" not in kw:
        kw["token"] = os.environ.get(getattr(env_cfg, "token_env", "KRILL_ENV_TOKEN")) or None
    env = RemoteEnv(url, split=split, **kw)
    wanted = getattr(env_cfg, "name", None)
    if wanted and wanted != "remote" and env.name not in ("remote", wanted):  # a Rust server names none
        env.close()
        raise KrillError(f"the env server at {mask_url(url)} serves {env.name!r}, but env.name is {wanted!r}: "
                         "point --env-url at a server of that env, or pass --env to match it",
                         where="env.url")  # fmt: skip
    return env
