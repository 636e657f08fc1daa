"""Training micro-batches on CPU: one left-padded batch of 4 vs the same 4 rows unpadded, side by side.

    python benchmarks/bench_train_memory.py                     # SmolLM2-135M (embedded), LoRA, 4 × 900 tokens
    python benchmarks/bench_train_memory.py --model tiny --length 256

Each mode runs in a fresh process (peak RSS is per process) and does what `krill sft` does for one
optimizer step: `collate` + `summed_token_ce` forward and backward on a LoRA model. A padded batch
carries an attention mask, so PyTorch's SDPA takes its math kernel, which keeps [b, heads, L, L]
attention weights per layer for the backward pass; an unpadded row runs the memory-lean flash kernel.
This is why the quick preset sets `sft.micro_batch_size: 1` and a one-sample `rl.micro_batch_tokens`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one_mode(model: str, length: int, rows: int, micro: int) -> dict:
    import torch

    from krill.config import KrillConfig
    from krill.train.setup import load_training_policy
    from krill.train.sft import collate, summed_token_ce

    cfg = KrillConfig().override({"model.policy.model": model})
    policy = load_training_policy(cfg)
    policy.model.train()
    g = torch.Generator().manual_seed(0)
    # rows of slightly different lengths, as real prompts are: the padded batch needs a mask
    data = []
    for i in range(rows):
        ids = torch.randint(100, 1000, (length - 10 * i,), generator=g).tolist()
        data.append((ids, [-100] * (len(ids) - 8) + ids[-8:]))
    t0 = time.perf_counter()
    for lo in range(0, rows, micro):
        loss, _ = summed_token_ce(policy.model, collate(data[lo : lo + micro], policy.tokenizer.pad_token_id))
        loss.backward()
    wall = time.perf_counter() - t0
    return {"micro": micro, "wall_s": round(wall, 2), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--length", type=int, default=900, help="tokens in the longest row")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)  # micro-batch size, run in this process
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one_mode(args.model, args.length, args.rows, args.child)))
        return
    results = {}
    for micro in (args.rows, 1):
        cmd = [sys.executable, __file__, "--model", args.model, "--length", str(args.length),
               "--rows", str(args.rows), "--child", str(micro)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[micro] = json.loads(out.strip().splitlines()[-1])
    padded, rows = results[args.rows], results[1]
    print(f"model {args.model}; {args.rows} rows of ≤{args.length} tokens, forward + backward (LoRA)")
    print(f"{'mode':<28} {'wall s':>7} {'peak RSS GB':>12}")
    print(f"{f'one padded batch of {args.rows}':<28} {padded['wall_s']:>7} {padded['peak_rss_gb']:>12}")
    print(f"{f'{args.rows} unpadded rows':<28} {rows['wall_s']:>7} {rows['peak_rss_gb']:>12}")
    ratio = padded["peak_rss_gb"] / rows["peak_rss_gb"]
    print(f"memory: {ratio:.1f}x less unpadded; time: {padded['wall_s'] / rows['wall_s']:.2f}x faster")
    print("BENCH " + json.dumps({"name": f"SFT step peak RSS, padded batch of {args.rows} vs unpadded rows ({args.model}, CPU)",
                                 "value": rows["peak_rss_gb"], "unit": "GB", "baseline": padded["peak_rss_gb"], "ratio": round(ratio, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
