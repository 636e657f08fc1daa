"""Per-row stop strings during decoding: every row decoded after every token vs only after tokens that can
complete a stop.

    python benchmarks/bench_stop_check.py [--model smollm2] [--rows 32] [--tokens 64 128 512]

Each decode step checks every live row for its stop strings. The naive check (krill before 2026-12-06)
decodes each row's whole reply after every token: ~5 µs plus ~0.6 µs a token, per row and step, host
time that on a GPU sits between two replays of the captured step. `decoding.stop_triggers` decodes a
row only after a token whose own text holds a stop's last character (or a partial UTF-8 byte): the
same rows stop at the same token (checked here on every step; tests/models/test_stop_triggers.py).
Random tokens, seeded; no model runs, only the tokenizer. The first call's one-time decode of the
vocabulary is timed apart.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from krill.models import decoding
from krill.models.decoding import RowResult, _record

STOP_SETS = {"agent (</action>, newline)": ["</action>", "\n"], "never matches (\\x00)": ["\x00"]}


def run(tokenizer, rows: int, tokens: int, stops: list[str], seed: int) -> tuple[float, list[int]]:
    """ms per step of `_record` over `tokens` steps of `rows` rows, and the step each row stopped at."""
    rng = random.Random(seed)
    results, stopped, total = [RowResult() for _ in range(rows)], [-1] * rows, 0.0
    live = list(range(rows))
    for step in range(tokens):
        ids = torch.tensor([rng.randrange(len(tokenizer)) for _ in live])
        t0 = time.perf_counter()
        keep = _record(tokenizer, results, live, ids, torch.zeros(len(live)), stops, set())
        total += time.perf_counter() - t0
        for j in set(range(len(live))) - set(keep):
            stopped[live[j]] = step
        live = [live[j] for j in keep]
        if not live:
            break
    return 1000 * total / tokens, stopped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="whose tokenizer: smollm2 | tiny | HF path")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--tokens", type=int, nargs="+", default=[64, 128, 512])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from krill.models.local import LocalPolicy

    tokenizer = LocalPolicy(args.model, device="cpu").tokenizer
    print(
        f"tokenizer of {args.model} ({len(tokenizer)} ids); {args.rows} rows; random tokens, seed {args.seed}"
    )
    fast_triggers = decoding.stop_triggers
    for label, stops in STOP_SETS.items():
        t0 = time.perf_counter()
        triggers = decoding.stop_triggers(tokenizer, stops)
        print(
            f"stops {label}: {len(triggers)} trigger ids, found in {1000 * (time.perf_counter() - t0):.0f} ms once"
        )
        for tokens in args.tokens:
            decoding.stop_triggers = lambda tokenizer, stops: None  # as before: decode after every token
            naive_ms, naive_stops = run(tokenizer, args.rows, tokens, stops, args.seed)
            decoding.stop_triggers = fast_triggers
            fast_ms, fast_stops = run(tokenizer, args.rows, tokens, stops, args.seed)
            assert fast_stops == naive_stops, "the two checks stopped rows at different tokens"
            print(f"  {tokens:>4} tokens: every token {naive_ms:6.3f} ms/step, trigger tokens {fast_ms:6.3f} "
                  f"ms/step ({naive_ms / fast_ms:.1f}x); rows stopped: {sum(s >= 0 for s in fast_stops)}")  # fmt: skip
            name = f"stop check ms/step, {args.rows} rows x {tokens} tokens, stops {label} ({args.model})"
            print("BENCH " + json.dumps({"name": name, "value": round(fast_ms, 3), "unit": "ms/step",
                                         "baseline": round(naive_ms, 3), "ratio": round(fast_ms / naive_ms, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
