"""Shared fault counters: every test records the faults it injected and anything lost; the suite's
summary prints the count per kind and the total lost (must be 0)."""

from __future__ import annotations

from collections import Counter

import pytest

FAULTS: Counter[str] = Counter()
LOST: list[str] = []


@pytest.fixture
def faults():
    """`faults.inject("kill-9")` counts an injected fault; `faults.lost("what")` records a loss."""

    class _F:
        @staticmethod
        def inject(kind: str, n: int = 1) -> None:
            FAULTS[kind] += n

        @staticmethod
        def lost(what: str) -> None:
            LOST.append(what)

    return _F


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter):
    if not FAULTS:
        return
    tr = terminalreporter
    tr.section("faults injected")
    for kind, n in sorted(FAULTS.items()):
        tr.write_line(f"{kind:32s} {n}")
    tr.write_line(f"total {sum(FAULTS.values())} faults, {len(LOST)} lost")
    for what in LOST:
        tr.write_line(f"  LOST: {what}")
