"""Compile cost of the static decoder's step: symbolic shapes (one compile) vs one compile per bucket.

    python benchmarks/bench_compile.py                                  # tiny model, CPU (inductor)
    python benchmarks/bench_compile.py --model random:smollm2-360m      # a real shape (~3 min on 2 cores)

A rollout on the static cache reaches several (rows, columns) buckets: columns double as chats grow,
rows halve as they finish. `StaticDecoder` compiles its step once with symbolic shapes
(`dynamic=True`) and lets CUDA graphs record per bucket; compiled per shape (`dynamic=False`) every
new bucket is a whole compile. Both ways run here one after the other in one process, fresh compiler
caches each (inductor's on-disk caches off), over the same buckets: the first step at each new shape (compile or recording included),
the next step (the compiled step itself), the graphs compiled, and each step's logits against the
eager step's. On CPU the compiler is inductor's C++ backend; on a GPU it is `triton`, with CUDA graphs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

SHAPES = [(8, 256), (8, 512), (4, 512), (8, 1024), (2, 256), (8, 256)]  # (rows, columns) a rollout visits


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def filled_batch(decoder, model, rows: int, columns: int, length: int = 100):
    """A static batch of `rows` (a bucket) × `columns` (a power of two ≥ 256) whose first `length`
    columns hold random K/V: a prefilled prompt, as `StaticDecoder.start` takes one over."""
    from types import SimpleNamespace

    from krill.models.kv_prefix import kv_heads_and_dim

    heads, dim = kv_heads_and_dim(model)
    gen = torch.Generator().manual_seed(0)
    param = next(model.parameters())
    layers = []
    for _ in range(model.config.num_hidden_layers):
        kv = torch.randn(rows, heads, length, dim, generator=gen).to(param)
        layers.append(SimpleNamespace(keys=kv, values=kv))
    mask = torch.ones(rows, length, dtype=torch.long, device=param.device)
    positions = torch.full((rows, 1), length - 1, device=param.device)
    return decoder.start(layers, mask, positions, list(range(rows)), max_new=columns - length)


def measure(model, dynamic: bool) -> dict:
    """First and second step per shape (s, ms), graphs compiled, worst |logit - eager logit|."""
    from torch._dynamo.utils import counters

    from krill.models.decoding import cache_kwarg
    from krill.models.static_decode import StaticDecoder

    torch._dynamo.reset()
    counters.clear()
    kw = cache_kwarg(model)
    decoder, eager = (
        StaticDecoder(model, kw, compile_step=False),
        StaticDecoder(model, kw, compile_step=False),
    )
    decoder._step = torch.compile(decoder._forward, mode="reduce-overhead", dynamic=dynamic)
    first, second, worst = [], [], 0.0
    for rows, columns in SHAPES:
        batch, reference = (
            filled_batch(decoder, model, rows, columns),
            filled_batch(eager, model, rows, columns),
        )
        for times in (first, second):  # the batches feed token 0 in every slot
            sync()
            t0 = time.perf_counter()
            logits = decoder.step(batch)
            sync()
            times.append(time.perf_counter() - t0)
            worst = max(worst, (logits - eager.step(reference)).abs().max().item())
    return {"first_s": first, "step_ms": [1000 * t for t in second], "graphs": counters["stats"]["unique_graphs"],
            "max_logit_diff": worst}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="tiny | random:<shape> | HF path")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # every compile cold, as on a fresh machine: inductor's on-disk caches would serve a repeated shape
    torch._inductor.config.fx_graph_cache = False
    torch._functorch.config.enable_autograd_cache = False

    from krill.models.local import LocalPolicy

    model = LocalPolicy(args.model, dtype=args.dtype, static_cache=False).model
    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"machine: {where}; model {args.model} ({args.dtype}); shapes (rows, columns) {SHAPES}")
    result = {}
    with torch.no_grad():
        for name, dynamic in (("per shape", False), ("symbolic", True)):
            m = result[name] = measure(model, dynamic)
            print(f"{name:>9}: {m['graphs']} graphs; first step per shape "
                  f"{', '.join(f'{t:.1f}' for t in m['first_s'])} s (total {sum(m['first_s']):.1f}); next step "
                  f"{', '.join(f'{t:.0f}' for t in m['step_ms'])} ms; max |logit - eager| {m['max_logit_diff']:.1e}")  # fmt: skip
    per_shape, symbolic = sum(result["per shape"]["first_s"]), sum(result["symbolic"]["first_s"])
    print("BENCH " + json.dumps({"name": f"static step compile + first steps over {len(SHAPES)} buckets, symbolic vs "
                                 f"per shape ({args.model}, {where})", "value": round(symbolic, 1), "unit": "s",
                                 "baseline": round(per_shape, 1), "ratio": round(symbolic / per_shape, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
