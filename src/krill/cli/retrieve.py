"""`krill retrieve`: Show the skills retrieved for a task."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def retrieve() -> None:
    """Show the skills retrieved for a task."""
    raise NotYetImplemented("`krill retrieve` is not implemented yet (issue 5)")
