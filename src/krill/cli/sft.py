"""`krill sft`: Cold-start SFT on skill-augmented demonstrations."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def sft() -> None:
    """Cold-start SFT on skill-augmented demonstrations."""
    raise NotYetImplemented("`krill sft` is not implemented yet (issue 7)")
