"""`krill rl`: GRPO with recursive skill evolution."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def rl() -> None:
    """GRPO with recursive skill evolution."""
    raise NotYetImplemented("`krill rl` is not implemented yet (issue 7/8)")
