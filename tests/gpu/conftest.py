"""GPU checks (`pytest -m gpu`): skipped without CUDA, so CI collects them and skips them cleanly.

Each test records what it measured (tolerances met, devices seen) through `gpu_record`; when
`KRILL_GPU_CHECK_OUT` names a folder, the figures are written there as `gpu_tests.json`
(benchmarks/gpu_check.sh reads them into its summary). `KRILL_GPU_TEST_DEVICE=cpu` runs the same
tests on the CPU, to check the tests themselves before a GPU machine is at hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from krill.io import write_json

_RECORDS: dict[str, dict] = {}


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available() or os.environ.get("KRILL_GPU_TEST_DEVICE") == "cpu":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh on a GPU machine)")
    for item in items:
        if item.get_closest_marker("gpu"):  # not `in item.keywords`: that also matches this folder's name
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    """accelerate keeps one process-wide state: a test that trains in fp32 after one that trained in
    bf16 would be refused ("AcceleratorState has already been initialized"). A krill run uses one
    precision throughout; tests reset between them, as accelerate's own tests do."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def gpu_record(request):
    """`gpu_record(key=value, ...)` stores figures under this test's name."""
    entry = _RECORDS.setdefault(request.node.name, {})

    def record(**figures):
        entry.update(figures)

    return record


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("KRILL_GPU_CHECK_OUT")
    if out and _RECORDS:
        write_json(Path(out) / "gpu_tests.json", _RECORDS)
