"""Training tests run their tiny models on one thread: on a shared 2-core machine, two torch threads
fighting other processes are ~10× slower than one (measured: 0.60 s vs 0.06 s per tiny forward)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
