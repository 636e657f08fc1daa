"""`krill train`: The whole loop into one run directory."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def train() -> None:
    """The whole loop into one run directory."""
    raise NotYetImplemented("`krill train` is not implemented yet (issue 8)")
