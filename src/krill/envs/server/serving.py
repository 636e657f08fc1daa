"""`serve`: bind the env server's app and run it under uvicorn with the network guards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn

from krill.envs.base import make_env
from krill.envs.http_guard import LOOPBACK_NAMES, MAX_CONNECTIONS, check_bind, guarded_protocol, is_loopback
from krill.envs.server.app import create_app
from krill.envs.server.sessions import close_quietly


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
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Check the bind, build one env up front (fails fast, warms caches such as generated games), call
    `on_ready` (the CLI says where it serves), then serve forever."""
    check_bind(host, token)
    close_quietly(make_env(env_name, split, cfg=cfg))
    app = create_app(
        env_name,
        split,
        cfg,
        token=token,
        max_sessions=max_sessions,
        max_body=max_body,
        # on loopback only the loopback names: a web page cannot reach the server through DNS rebinding
        allowed_hosts=LOOPBACK_NAMES if is_loopback(host) else None,
        session_handles=session_handles,
    )
    if on_ready is not None:
        on_ready()
    # limit_concurrency bounds open connections so a flood cannot exhaust threads or memory; the guarded
    # protocol closes connections whose headers stall and caps each client's share (http_guard.py).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        limit_concurrency=max(MAX_CONNECTIONS, 4 * max_sessions),
        http=guarded_protocol(),
    )
