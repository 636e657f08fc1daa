"""Prefix KV-cache reuse: same tokens as a cold prefill, real reuse, dropped when the weights change."""

from __future__ import annotations

import pytest
import torch

from krill.models.kv_prefix import PrefixCache
from krill.models.local import LocalPolicy

SYSTEM = "You are an expert agent operating in the ALFRED Embodied Environment. " * 4


def step_msgs(task: str, step: int) -> list[dict[str, str]]:
    fixed = f"## Task\nYour task is to: {task}\n\n## Initial Observation\nYou are in the middle of a room."
    changing = f"## Current Observation (step {step})\nYou arrive at cabinet {step}. Nothing happens."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{fixed}\n\n{changing}"}]


@pytest.fixture(scope="module")
def pair():
    warm = LocalPolicy("tiny", device="cpu")
    cold = LocalPolicy("tiny", device="cpu", prefix_cache_bytes=0)
    return warm, cold


def test_reuse_gives_the_same_tokens_and_logprobs(pair):
    warm, cold = pair
    tasks = [
        "heat some egg and put it in the fridge",
        "put a clean mug in the coffeemachine",
        "look at a book",
    ]
    for step in range(3):  # each step shares the system + task prefix with the previous one
        batch = [step_msgs(t, step) for t in tasks]
        a = warm.generate(batch, max_new_tokens=10, want_logprobs=True)
        b = cold.generate(batch, max_new_tokens=10, want_logprobs=True)
        assert [g.token_ids for g in a] == [g.token_ids for g in b]
        for ga, gb in zip(a, b, strict=True):
            assert ga.logprobs == pytest.approx(gb.logprobs, abs=1e-4)
            assert ga.prompt_tokens == gb.prompt_tokens
    stats = warm.prefix_cache.stats()
    assert stats["reused_tokens"] > stats["prefilled_tokens"] > 0  # most of steps 2-3 came from the cache
    assert cold.prefix_cache is None


def test_mixed_batch_of_cached_and_new_rows(pair):
    warm, cold = pair
    batch = [step_msgs("heat some egg and put it in the fridge", 7), [{"role": "user", "content": "hi"}]]
    a = warm.generate(batch, max_new_tokens=8)
    b = cold.generate(batch, max_new_tokens=8)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]


def test_cache_is_dropped_when_weights_change():
    pol = LocalPolicy("tiny", device="cpu")
    msgs = [step_msgs("cool a tomato", 1)]
    pol.generate(msgs, max_new_tokens=4)
    assert pol.prefix_cache.entries
    with torch.no_grad():
        pol.model.lm_head.weight.mul_(1.5)  # an in-place update, as an optimizer step makes
    after = pol.generate(msgs, max_new_tokens=6, want_logprobs=True)[0]
    fresh = LocalPolicy("tiny", device="cpu", prefix_cache_bytes=0)
    with torch.no_grad():
        fresh.model.lm_head.weight.mul_(1.5)
    ref = fresh.generate(msgs, max_new_tokens=6, want_logprobs=True)[0]
    assert after.token_ids == ref.token_ids and after.logprobs == pytest.approx(ref.logprobs, abs=1e-4)


def test_lookup_and_lru_bound():
    kv = [(torch.zeros(1, 20, 2), torch.zeros(1, 20, 2))]  # 2 × 40 floats = 320 bytes per entry
    cache = PrefixCache(max_bytes=700, min_reuse=3)
    cache.put(list(range(20)), kv)
    assert cache.lookup(list(range(10)) + [99])[1] == 10
    assert cache.lookup(list(range(20)))[1] == 19  # one token is always left to prefill
    assert cache.lookup([5, 6, 7, 8])[1] == 0  # no common prefix
    assert cache.lookup([0, 1, 99])[1] == 0  # shorter than min_reuse
    cache.put(list(range(100, 120)), kv)
    cache.put(list(range(200, 220)), kv)
    assert len(cache.entries) == 2 and tuple(range(20)) not in cache.entries  # oldest evicted


def test_lookup_finds_the_longest_shared_prefix_and_the_lru_order_serves_ties():
    """Against a brute-force reference over chats that share first turns, extend, and diverge."""
    import random

    rng = random.Random(0)
    cache = PrefixCache(max_bytes=1 << 30, min_reuse=4)
    firsts = [[rng.randrange(50) for _ in range(30)] for _ in range(3)]
    stored: list[list[int]] = []
    for i in range(24):
        ids = firsts[i % 3] + [rng.randrange(50) for _ in range(rng.randrange(0, 40))]
        if stored and rng.random() < 0.3:  # the next step of an earlier chat: its entry is superseded
            ids = stored[rng.randrange(len(stored))] + [rng.randrange(50) for _ in range(5)]
        cache.put(
            ids, [(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1))]
        )  # its own states: `is` tells them apart
        stored = [list(k) for k in cache.entries]
        for query in (ids + [1, 2], firsts[i % 3][:20] + [7] * 10, [rng.randrange(50) for _ in range(60)]):
            order = list(cache.entries)  # LRU order before the lookup moves the winner last
            want = max((_shared(k, query), -n) for n, k in enumerate(order))
            found, length = cache.lookup(query)
            expected = -want[1] if want[0] >= cache.min_reuse else None
            assert length == (want[0] if expected is not None else 0)
            assert found is (cache.entries[order[expected]] if expected is not None else None)
    assert all(not (len(a) < len(b) and b[: len(a)] == a) for a in cache.entries for b in cache.entries)


def _shared(key: tuple[int, ...], query: list[int]) -> int:
    n = min(len(key), len(query) - 1)
    return next((i for i in range(n) if key[i] != query[i]), n)


def test_reset_prefix_cache(pair):
    warm, _ = pair
    warm.generate([step_msgs("look at a book", 3)], max_new_tokens=2)
    assert warm.prefix_cache.entries
    warm.reset_prefix_cache()
    assert not warm.prefix_cache.entries and warm.prefix_cache.stats()["reused_tokens"] == 0


def test_cache_is_dropped_after_a_fused_optimizer_step():
    pol = LocalPolicy("tiny", device="cpu")
    msgs = [step_msgs("cool a tomato", 1)]
    pol.generate(msgs, max_new_tokens=4)
    version = pol.prefix_cache.version
    pol.model.requires_grad_(True)  # full fine-tuning (a loaded policy is frozen until made trainable)
    opt = torch.optim.AdamW(pol.model.parameters(), lr=0.5, fused=True)  # fused: no version-counter bump
    pol.model(**pol.tokenizer("heat the egg", return_tensors="pt")).logits.sum().backward()
    opt.step()
    pol.generate(msgs, max_new_tokens=4)
    assert pol.prefix_cache.version != version and pol.prefix_cache.stats()["reused_tokens"] == 0


@pytest.mark.parametrize("rowwise", [False, True])
def test_batched_and_rowwise_prefill_agree_with_cold(pair, rowwise):
    _, cold = pair
    warm = LocalPolicy("tiny", device="cpu", rowwise_prefill=rowwise)
    assert warm.rowwise_prefill is rowwise
    tasks = ["clean a plate", "put two cds in the safe, then look around the whole room carefully", "x"]
    prompt_tokens = 0
    for step in range(2):
        batch = [step_msgs(t, step) for t in tasks] + [[{"role": "user", "content": "hi"}]]
        a = warm.generate(batch, max_new_tokens=6, want_logprobs=True)
        b = cold.generate(batch, max_new_tokens=6, want_logprobs=True)
        assert [g.token_ids for g in a] == [g.token_ids for g in b]
        prompt_tokens += sum(g.prompt_tokens for g in a)
        assert [lp for g in a for lp in g.logprobs] == pytest.approx(
            [lp for g in b for lp in g.logprobs], abs=1e-4
        )
    stats = warm.prefix_cache.stats()
    assert stats["reused_tokens"] + stats["prefilled_tokens"] == prompt_tokens  # each token counted once
    assert stats["reused_tokens"] > 0


def test_rowwise_falls_back_to_batched_when_the_cache_is_too_small(pair):
    from krill.models.kv_prefix import kv_bytes_per_token

    _, cold = pair
    small = LocalPolicy("tiny", device="cpu")
    per_token = kv_bytes_per_token(small.model)
    assert per_token == 2 * 2 * 2 * 16 * 4  # K+V × 2 layers × 2 kv heads × head_dim 16 × fp32
    small.prefix_cache.max_bytes = 150 * per_token  # one prompt fits, the whole batch does not
    batch = [step_msgs(t, 0) for t in ("heat an egg", "cool a mug", "clean a fork")]
    a = small.generate(batch, max_new_tokens=5)
    assert [g.token_ids for g in a] == [g.token_ids for g in cold.generate(batch, max_new_tokens=5)]
    assert small.prefix_cache.stats()["bytes"] <= 150 * per_token
    assert (
        small.prefix_cache.stats()["reused_tokens"] == 0
    )  # batched prefill: rows did not share via the cache
