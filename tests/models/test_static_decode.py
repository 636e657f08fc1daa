"""The static-cache decoder (issue 34) gives the dynamic path's tokens and log-probs (fp32: to 1e-5),
for window prompts and constrained rows, rows that finish early included; finished rows leave through
smaller buckets, and a bucket's cache is reused across calls. Here the decoder starts from a prefilled
growing cache (a policy without prompt caching); tests/models/test_chat_slots.py covers it on the slots
that keep conversations across calls."""

from __future__ import annotations

import logging

import pytest
from test_chat_slots import TASKS, assert_same, msgs  # one set of cases and one comparison

from krill.models.local import LocalPolicy
from krill.models.static_decode import column_bucket, row_bucket


@pytest.fixture(scope="module")
def dynamic():
    return LocalPolicy("tiny", device="cpu", static_cache=False)


@pytest.fixture(scope="module", params=[False, True], ids=["sync", "lookahead"])
def pair(request, dynamic):
    """The static decoder's policy (queuing each step before the host's stop checks, `lookahead`, as on
    CUDA, or after them) and the growing cache's."""
    static = LocalPolicy("tiny", device="cpu", static_cache=True, prefix_cache_bytes=0)
    assert static.slots is None  # no prompt caching: the decoder's own buckets from the first step
    static.static.lookahead = request.param
    return static, dynamic


def test_buckets():
    assert [row_bucket(n) for n in (1, 2, 3, 5, 33, 256, 300)] == [2, 2, 4, 8, 64, 256, 512]
    assert [column_bucket(n) for n in (1, 256, 257, 1000, 1025, 5000)] == [256, 256, 512, 1024, 2048, 8192]


@pytest.mark.parametrize(("temperature", "seed"), [(0.0, None), (1.0, 11)])
def test_window_prompts_give_the_same_tokens_and_logprobs(pair, temperature, seed):
    static, dynamic = pair
    assert static.static is not None and dynamic.static is None
    batch = [msgs(t) for t in TASKS]  # 6 rows: a bucket of 8, two padding slots
    kw = dict(max_new_tokens=12, temperature=temperature, top_p=0.9, want_logprobs=True, seed=seed)
    assert_same(static.generate(batch, **kw), dynamic.generate(batch, **kw))


def test_rows_that_finish_early_leave_through_smaller_buckets(pair):
    static, dynamic = pair
    batch = [msgs(t, 3) for t in TASKS]
    # frequent letters as stop strings end rows at different steps
    kw = dict(max_new_tokens=16, temperature=1.0, want_logprobs=True, seed=5, stop=["e", "a"])
    a, b = static.generate(batch, **kw), dynamic.generate(batch, **kw)
    assert_same(a, b)
    lengths = sorted(len(g.token_ids) for g in a)
    assert lengths[0] < lengths[-1] and lengths[0] < 16  # some rows stopped early, some went on
    assert set(static.static.caches) >= {8, 4, 2}  # 6 live rows → 3 → 2 → 1


def test_a_buckets_cache_is_reused_across_calls(pair):
    static, _ = pair
    batch = [msgs(t, 9) for t in TASKS[:2]]
    static.generate(batch, max_new_tokens=4)
    before = dict(static.static.caches)
    static.generate(batch, max_new_tokens=4)
    assert static.static.caches.keys() == before.keys()
    assert all(static.static.caches[k][1] is before[k][1] for k in before)
    # a longer prompt needs more columns: the row bucket's cache is replaced, not kept beside the old one
    long = [[{"role": "user", "content": "look around the room carefully. " * 60}]] * 2
    static.generate(long, max_new_tokens=4)
    columns, cache = static.static.caches[2]
    assert columns > before[2][0] and cache is not before[2][1] and len(static.static.caches) == len(before)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_constrained_rows_and_free_rows_together(pair, temperature):
    static, dynamic = pair
    batch = [msgs(t) for t in TASKS[:4]]
    choices = [
        ["open cabinet 1", "go to fridge 1", "look"],
        None,
        ["take egg 1 from cabinet 2", "look"],
        None,
    ]
    kw = dict(max_new_tokens=8, temperature=temperature, want_logprobs=True, seed=3, choices=choices)
    a, b = static.generate(batch, **kw), dynamic.generate(batch, **kw)
    assert_same(a, b)
    assert a[0].choice_index is not None and a[1].choice_index is None


@pytest.mark.slow
def test_the_compiled_step_gives_the_same_tokens(dynamic, caplog):
    """The step as `torch.compile` builds it (on CUDA: CUDA graphs; here: inductor on CPU, ~30 s)."""
    from test_chat_slots import play
    from torch._dynamo.utils import counters

    from krill.models.decoding import cache_kwarg
    from krill.models.static_decode import StaticDecoder

    caplog.set_level(logging.INFO, logger="krill")
    compiled = LocalPolicy("tiny", device="cpu", static_cache=True)  # with the chat slots
    compiled.static = StaticDecoder(
        compiled.model, cache_kwarg(compiled.model), compile_step=True, lookahead=True
    )
    shapes, step = set(), compiled.static.step
    compiled.static.step = lambda batch: shapes.add(tuple(batch.mask.shape)) or step(batch)
    graphs = counters["stats"]["unique_graphs"]
    batch = [msgs(t, 4) for t in TASKS]
    kw = dict(max_new_tokens=10, want_logprobs=True, stop=["e"])
    assert_same(compiled.generate(batch, **kw), dynamic.generate(batch, **kw))
    # chats on the slots' cache, a trie pass between compiled steps (which resets the write counter)
    play((compiled, LocalPolicy("tiny", device="cpu", static_cache=False)), TASKS[:2], 2, constrained={1})
    # one compile for every bucket, not one per (rows, columns) shape; no one-row bucket to specialize
    assert len(shapes) >= 3 and counters["stats"]["unique_graphs"] - graphs == 1, shapes
    assert min(rows for rows, _ in shapes) == 2
    # each shape's first two steps (compile or warm-up, capture) timed and logged, for benchmarks
    assert set(compiled.static.warm) == shapes and compiled.static.warmup_s > 0
    assert sum("warmed in" in r.getMessage() for r in caplog.records) == sum(compiled.static.warm.values())
