"""`krill distill`: Distill trajectories into a two-tier skill bank."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def distill() -> None:
    """Distill trajectories into a two-tier skill bank."""
    raise NotYetImplemented("`krill distill` is not implemented yet (issue 6)")
