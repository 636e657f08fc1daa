"""Secrets never leave the process: URLs are shown with their credentials masked.

Keys themselves never enter a config (only the *name* of the environment variable holding one), so
what is left to mask is a URL that carries `user:password@` (an OpenAI-compatible server behind basic
auth) or a secret in its query string (`?api_key=...`), wherever a config is written or a message
names the server: `mask_url` finds them anywhere in a text, and the CLI passes every error through it.
"""

from __future__ import annotations

import re
from typing import Any

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\s@]*)@")
_SECRET_PARAM = re.compile(
    r"([?&](?:[A-Za-z0-9_\-]*(?:key|token|secret|password|passwd|pass|auth|sig|signature|credential)"
    r"[A-Za-z0-9_\-]*)=)([^&#\s]*)",
    re.IGNORECASE,
)


def mask_url(text: str) -> str:
    """'http://user:key@host/v1?api_key=S' → 'http://user:***@host/v1?api_key=***', anywhere in `text`
    (a bare 'http://token@host' → '***@')."""

    def hide(m: re.Match[str]) -> str:
        user, colon, _ = m.group(2).partition(":")
        return f"{m.group(1)}{user + ':***' if colon else '***'}@"

    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}***", _USERINFO.sub(hide, text))


def mask_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: mask_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_urls(v) for v in value]
    return mask_url(value) if isinstance(value, str) else value
