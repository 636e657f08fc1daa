"""Per-step cost of krill's decoding loop against a bare Hugging Face forward loop, same model, side by side.

    python benchmarks/bench_decode_overhead.py                                   # tiny model, CPU
    python benchmarks/bench_decode_overhead.py --model random:smollm2-360m --profile   # on a GPU

Three loops decode the same prompt greedily for `--tokens` steps at 1 and `--rows` rows:
  krill      `LocalPolicy.generate` (decoding.decode_batch: mask, positions, log-probs, stop checks)
  hf+mask    the model called with the same 2-D attention mask and position ids krill passes
  hf         the model alone (no mask: the causal fast path), argmax kept on the device
The ratio krill / hf is what krill's loop adds per step. On CPU compute dominates and the loops
cost the same; on the H100 of docs/benchmarks.md krill took 96.7 ms/step where the bare loop took
41.4 (random:smollm2-360m, bf16, one row): this script exists to find where the difference goes.
`--profile` prints torch.profiler's top operators of one krill call by self CPU time.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


@torch.no_grad()
def hf_loop(model, ids: torch.Tensor, tokens: int, with_mask: bool) -> None:
    """Greedy decoding with a bare model call per token (the token never leaves the device)."""
    from transformers import DynamicCache

    from krill.models.decoding import cache_kwarg

    kw = cache_kwarg(model)
    cache = DynamicCache(config=model.config)
    mask = torch.ones_like(ids)
    pos = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
    extra = {"attention_mask": mask, "position_ids": pos} if with_mask else {}
    nxt = model(input_ids=ids, use_cache=True, **extra, **{kw: cache}).logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(tokens - 1):
        if with_mask:
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            pos = pos[:, -1:] + 1
            extra = {"attention_mask": mask, "position_ids": pos}
        nxt = (
            model(input_ids=nxt, use_cache=True, **extra, **{kw: cache})
            .logits[:, -1]
            .argmax(-1, keepdim=True)
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="tiny | random:<shape> | smollm2 | HF path")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of one krill call")
    args = ap.parse_args()

    from krill.models.local import LocalPolicy

    policy = LocalPolicy(args.model, prefix_cache_bytes=0)  # no reuse: every call does the same work
    model, tok = policy.model, policy.tokenizer
    msgs = [{"role": "user", "content": "Instruction: i need a pair of waterproof hiking shoes. " * 8}]
    prompt = tok(policy.prompt_text(msgs), add_special_tokens=False)["input_ids"]
    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(
        f"machine: {where}; model {args.model} ({next(model.parameters()).dtype}); prompt {len(prompt)} tokens"
    )
    policy.generate([msgs], max_new_tokens=4)  # warm-up: kernels, allocator
    for rows in (1, args.rows):
        ids = torch.tensor([prompt] * rows, device=policy.device)
        # a stop string that never matches keeps krill's per-step stop check in the loop
        batch = [msgs] * rows
        krill = timed(lambda b=batch: policy.generate(b, max_new_tokens=args.tokens, stop=["\x00"]))
        masked = timed(lambda i=ids: hf_loop(model, i, args.tokens, True))
        bare = timed(lambda i=ids: hf_loop(model, i, args.tokens, False))
        ms = [1000 * t / args.tokens for t in (krill, masked, bare)]
        print(f"rows {rows:>3}: krill {ms[0]:7.1f} ms/step   hf+mask {ms[1]:7.1f}   hf {ms[2]:7.1f}   "
              f"krill/hf {ms[0] / ms[2]:.2f}x")  # fmt: skip
        name = f"decode ms/step, krill loop vs bare HF loop, {rows} rows ({args.model}, {where})"
        print("BENCH " + json.dumps({"name": name, "value": round(ms[0], 2), "unit": "ms/step",
                                     "baseline": round(ms[2], 2), "ratio": round(ms[0] / ms[2], 2)}))  # fmt: skip
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        with profile(activities=acts) as prof:
            policy.generate([msgs], max_new_tokens=16, stop=["\x00"])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
