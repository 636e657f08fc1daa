"""Inference with a LoRA adapter: kept as a PEFT wrapper vs merged into the base weights, side by side.

    python benchmarks/bench_adapter_merge.py                  # SmolLM2-135M (embedded), 8 × 200 tokens
    python benchmarks/bench_adapter_merge.py --model tiny --length 64

`krill eval` / `krill collect` load a trained adapter through `models/loading.load_causal_lm`, which
folds the LoRA deltas into the base weights (`merge_and_unload`): one matmul per layer instead of
base + A·B. Both models here hold the same adapter (random non-zero B, the quick preset's LoRA
config); the script checks they give the same logits, then times a no-grad forward of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time


def _adapted_model(model_name: str, out_dir: str, cache_dir: str):
    """A fresh LoRA (the quick preset's config) on the base model, saved to `out_dir`; returns the
    PEFT-wrapped model itself: the naive path, which adds the A·B deltas on every call."""
    import torch

    from krill.config import load_config
    from krill.models.loading import load_causal_lm
    from krill.train.checkpoint import make_trainable

    lora = load_config(preset="quick").lora
    model, _, _ = load_causal_lm(model_name, device="cpu", dtype="float32", cache_dir=cache_dir)
    peft_model = make_trainable(model, lora, seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a fresh LoRA has B = 0, i.e. no delta: give it one, as training would
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    peft_model.save_pretrained(out_dir)
    return peft_model.eval()


def _time_forward(model, ids, repeats: int) -> float:
    import torch

    times = []
    with torch.inference_mode():
        model(input_ids=ids[:1, :16])  # warm-up: first-call allocations
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import torch

    from krill.config import KrillConfig
    from krill.models.loading import load_causal_lm

    cache_dir = KrillConfig().cache_dir
    with tempfile.TemporaryDirectory() as adapter:
        wrapped = _adapted_model(args.model, adapter, cache_dir)
        merged, _, _ = load_causal_lm(
            args.model, adapter=adapter, device="cpu", dtype="float32", cache_dir=cache_dir
        )
    ids = torch.randint(100, 1000, (args.batch, args.length), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        diff = (wrapped(input_ids=ids[:2]).logits - merged(input_ids=ids[:2]).logits).abs().max().item()
    slow = _time_forward(wrapped, ids, args.repeats)
    fast = _time_forward(merged, ids, args.repeats)
    print(f"model {args.model}; forward of {args.batch} × {args.length} tokens, median of {args.repeats}, "
          f"{torch.get_num_threads()} threads; max |logit diff| {diff:.2e}")  # fmt: skip
    print(f"{'PEFT wrapper (unmerged)':<26} {slow * 1000:>9.1f} ms")
    print(f"{'merged into the weights':<26} {fast * 1000:>9.1f} ms")
    print(f"merged is {slow / fast:.2f}x faster")
    print("BENCH " + json.dumps({"name": f"forward with a LoRA adapter, merged vs PEFT wrapper ({args.model}, {args.batch}x{args.length} tokens)",
                                 "value": round(fast * 1000, 1), "unit": "ms", "baseline": round(slow * 1000, 1), "ratio": round(slow / fast, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
