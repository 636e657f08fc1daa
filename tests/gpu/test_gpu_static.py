"""The static-cache decoder on the GPU (issue 34): its CUDA-graph step gives the dynamic path's tokens
and log-probs, finished rows leave through smaller buckets, a captured bucket is replayed, and chats
kept in the static cache's slots (prefill, trie pass, decode there) match the prefix-cache path."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from test_chat_slots import play  # noqa: E402
from test_static_decode import TASKS, assert_same, msgs  # noqa: E402

from krill.models.local import LocalPolicy  # noqa: E402

pytestmark = pytest.mark.gpu
DEVICE = torch.device(os.environ.get("KRILL_GPU_TEST_DEVICE", "cuda"))


@pytest.fixture(scope="module")
def pair():
    # fp32: the comparison is exact up to kernel order; on CUDA the static one is compiled (graphs)
    kw = dict(device=DEVICE.type, dtype="float32")
    return LocalPolicy("tiny", static_cache=True, **kw), LocalPolicy("tiny", static_cache=False, **kw)


def test_the_graph_step_on_device_equals_the_dynamic_path(pair, gpu_record):
    static, dynamic = pair
    assert static.static is not None and static.static.compiled == (DEVICE.type == "cuda")
    assert static.static.lookahead == (DEVICE.type == "cuda")  # each step queued before the stop checks
    batch = [msgs(t, 2) for t in TASKS]
    for kw in (dict(temperature=0.0), dict(temperature=1.0, seed=7, stop=["e", "a"])):
        a = static.generate(batch, max_new_tokens=16, want_logprobs=True, **kw)
        b = dynamic.generate(batch, max_new_tokens=16, want_logprobs=True, **kw)
        assert [g.token_ids for g in a] == [g.token_ids for g in b]
        worst = max(
            abs(x - y) for p, q in zip(a, b, strict=True) for x, y in zip(p.logprobs, q.logprobs, strict=True)
        )
        assert worst < 1e-4
    choices = [["open cabinet 1", "look"], None, ["go to fridge 1", "look"], None, None, None]
    kw = dict(max_new_tokens=8, want_logprobs=True, choices=choices)
    a, b = static.generate(batch, **kw), dynamic.generate(batch, **kw)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert static.slots.rows == 8 and set(static.static.caches) >= {4}  # 4 of 8 slots live: a bucket of 4
    gpu_record(static_vs_dynamic_logprob_max_gap=worst, buckets=sorted(static.static.caches))


def test_conversations_in_the_slots_on_device(pair, gpu_record):
    """Chats turn after turn, some constrained, some ending early, then a group sharing a first prompt."""
    static, _ = pair
    play(pair, TASKS, 4, constrained={0, 3}, ends={1: 2})
    play(pair, [TASKS[2]] * 4, 2, constrained={1})
    gpu_record(slot_stats=static.slots.stats())


def test_a_replayed_bucket_is_faster_than_its_first_capture(pair, gpu_record):
    """Recorded, not asserted (no timing asserts): the first call captures, later calls replay."""
    static, _ = pair
    batch = [msgs(t, 5) for t in TASKS[:4]]
    times = []
    for _ in range(3):
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        static.generate(batch, max_new_tokens=24, stop=["\x00"])
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    gpu_record(first_call_s=round(times[0], 3), replay_call_s=round(min(times[1:]), 3))
    assert_same(static.generate(batch, max_new_tokens=6), pair[1].generate(batch, max_new_tokens=6))
