"""Prefix-cache lookups of a batched conversation rollout: ids kept as arrays vs rebuilt per comparison.

    python benchmarks/bench_prefix_lookup.py [--episodes 64] [--group 8] [--tokens 3000]

A rollout of `--episodes` chats (groups of `--group` copies of one task share their first turn) holds
one cache entry per live chat; each step looks every chat's new prompt up against all of them. The
naive lookup (krill before 2026-12-06) walked an OrderedDict, which hashes each key (a whole prompt's
ids) again on iteration, and rebuilt a NumPy array from each key's tuple for every comparison;
`PrefixCache` keeps each key's array in a plain dict and skips, in O(1), an entry that cannot beat the
best match so far. Same entries, same
queries, same answers (checked), side by side in one run. No model: only the lookup is timed.
A third figure, the static cache's slot matching (`ChatSlots._longest`, issue 34) over the same
chats, is timed in the same run (same answers, checked).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import OrderedDict

import numpy as np

from krill.models.chat_slots import ChatSlots
from krill.models.kv_prefix import PrefixCache


def naive_lookup(entries: OrderedDict, min_reuse: int, ids: list[int]) -> tuple[tuple[int, ...] | None, int]:
    """The lookup as it was: an OrderedDict walked, each key's tuple turned into an array to compare."""
    best_key, best = None, 0
    query = np.asarray(ids, dtype=np.int64)
    for key in entries:
        n = min(len(key), len(ids) - 1)
        if n <= best:
            continue
        diff = np.nonzero(np.asarray(key[:n], dtype=np.int64) != query[:n])[0]
        common = int(diff[0]) if len(diff) else n
        if common > best:
            best_key, best = key, common
    return (best_key, best) if best_key is not None and best >= min_reuse else (None, 0)


def chats(episodes: int, group: int, tokens: int, rng: np.random.Generator) -> list[list[int]]:
    firsts = [rng.integers(0, 49152, size=tokens // 3).tolist() for _ in range(-(-episodes // group))]
    return [
        firsts[i // group] + rng.integers(0, 49152, size=tokens - tokens // 3).tolist()
        for i in range(episodes)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=3000, help="length of each stored chat")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cache = PrefixCache(max_bytes=1 << 40)
    stored = chats(args.episodes, args.group, args.tokens, rng)
    for ids in stored:
        cache.put(ids, [])  # no tensors: the lookup never reads them
    queries = [ids + rng.integers(0, 49152, size=60).tolist() for ids in stored]  # each chat's next step
    old = OrderedDict(cache.entries)  # the old structure, same entries in the same order
    slots = ChatSlots(model=None, cache_kw="")  # matching only: no buffer is touched
    slots.ids = [np.asarray(ids, dtype=np.int64) for ids in stored]
    fast_s, naive_s, slot_s = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fast = [cache.lookup(q)[1] for q in queries]
        t1 = time.perf_counter()
        naive = [naive_lookup(old, cache.min_reuse, q)[1] for q in queries]
        t2 = time.perf_counter()
        slot = [slots._longest(np.asarray(q, dtype=np.int64))[1] for q in queries]
        t3 = time.perf_counter()
        fast_s.append(t1 - t0)
        naive_s.append(t2 - t1)
        slot_s.append(t3 - t2)
    assert fast == naive == slot, "the lookups disagree"
    fast_ms, naive_ms, slot_ms = 1000 * min(fast_s), 1000 * min(naive_s), 1000 * min(slot_s)
    print(f"{args.episodes} chats × {args.tokens} tokens, one rollout step's {len(queries)} lookups: "
          f"arrays kept {fast_ms:.1f} ms, rebuilt {naive_ms:.1f} ms: {naive_ms / fast_ms:.1f}x; "
          f"slot matching {slot_ms:.1f} ms")  # fmt: skip
    name = f"prefix-cache lookups per rollout step, {args.episodes} chats x {args.tokens} tokens"
    print("BENCH " + json.dumps({"name": name, "value": round(fast_ms, 2), "unit": "ms", "baseline": round(naive_ms, 2),
                                 "ratio": round(naive_ms / fast_ms, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
