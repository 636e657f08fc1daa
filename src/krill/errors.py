"""User-facing errors: one line naming the file, the place and the problem; the CLI exits 2."""

from __future__ import annotations

from pathlib import Path


class KrillError(Exception):
    """An error caused by the user's input or environment, shown as one line (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, where: str | None = None):
        self.path = str(path) if path is not None else None
        self.where = where
        self.message = message  # without the path: what a server may tell a remote client
        parts = [p for p in (self.path, where) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
