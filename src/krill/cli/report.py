"""`krill report`: HTML report with figures for a run directory."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def report() -> None:
    """HTML report with figures for a run directory."""
    raise NotYetImplemented("`krill report` is not implemented yet (issue 9)")
