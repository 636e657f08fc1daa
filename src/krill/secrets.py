"""Secrets never leave the process: URLs are shown with their credentials masked.

Keys themselves never enter a config (only the *name* of the environment variable holding one), so
what is left to mask is a URL that carries `user:password@` (an OpenAI-compatible server behind basic
auth), wherever a config is written or a message names the server.
"""

from __future__ import annotations

import re
from typing import Any

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)@")


def mask_url(text: str) -> str:
    """'http://user:key@host/v1' → 'http://user:***@host/v1' (a bare 'http://token@host' → '***@')."""

    def hide(m: re.Match[str]) -> str:
        user, colon, _ = m.group(2).partition(":")
        return f"{m.group(1)}{user + ':***' if colon else '***'}@"

    return _USERINFO.sub(hide, text)


def mask_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: mask_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_urls(v) for v in value]
    return mask_url(value) if isinstance(value, str) else value
