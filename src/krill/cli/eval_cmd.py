"""`krill eval`: Evaluate a policy per category with confidence intervals."""

from __future__ import annotations

from krill.errors import NotYetImplemented


def eval_() -> None:
    """Evaluate a policy per category with confidence intervals."""
    raise NotYetImplemented("`krill eval` is not implemented yet (issue 9)")
