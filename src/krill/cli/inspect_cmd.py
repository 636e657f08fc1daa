"""`krill inspect`: Print a skill bank: general skills first, then per category."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def inspect() -> None:
    """Print a skill bank: general skills first, then per category."""
    raise NotYetImplemented("`krill inspect` is not implemented yet (issue 3)")
