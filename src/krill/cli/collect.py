"""`krill collect`: Roll out a policy in an environment and write trajectories."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def collect() -> None:
    """Roll out a policy in an environment and write trajectories."""
    raise NotYetImplemented("`krill collect` is not implemented yet (issue 4/5)")
