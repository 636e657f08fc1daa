"""Per-step cost of krill's decoding loop against a bare Hugging Face forward loop, same model, side by side.

    python benchmarks/bench_decode_overhead.py                                   # tiny model, CPU
    python benchmarks/bench_decode_overhead.py --model random:smollm2-360m --profile   # on a GPU

Five loops decode the same prompt greedily for `--tokens` steps at 1 and `--rows` rows:
  krill      `LocalPolicy.generate` on the growing cache (decoding.decode: mask, positions, log-probs,
             stop checks)
  static     the same on krill's static cache (decoding.decode_static; on CUDA its step is a CUDA graph),
             each step queued before the host's stop checks of the last (`lookahead`, the CUDA default);
             `static-sync` is the same loop with the step queued after them (the host waits every step)
  hf+mask    the model called with the same 2-D attention mask and position ids krill passes
  hf         the model alone (no mask: the causal fast path), argmax kept on the device
  hf-graph   the model alone on transformers' StaticCache, the step compiled with CUDA graphs
             (`torch.compile(mode="reduce-overhead")`; eager on CPU): what an inference engine's step costs
The ratio krill / hf is what krill's loop adds per step; static / hf-graph is issue 34's target (≤ 1.2 at
32 rows on a GPU). On CPU compute dominates and the loops
cost the same; on the H100 of docs/benchmarks.md krill took 96.7 ms/step where the bare loop took
41.4 (random:smollm2-360m, bf16, one row): this script exists to find where the difference goes.
`--profile` prints torch.profiler's top operators of one krill call by self CPU time. `--count-host-ops`
counts the tensor ops (views excluded) the static loop issues per step outside the step itself (eager):
on a GPU each is a launch the host makes while the GPU waits, between two replays of the captured step.
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


@torch.no_grad()
def hf_graph_loop(model, ids: torch.Tensor, tokens: int, step) -> None:
    """Greedy decoding on a preallocated cache with a captured step (`step`: the compiled forward)."""
    from transformers import StaticCache

    from krill.models.decoding import cache_kwarg

    kw = cache_kwarg(model)
    cache = StaticCache(config=model.config, max_cache_len=ids.shape[1] + tokens)
    nxt = model(input_ids=ids, use_cache=True, **{kw: cache}).logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(tokens - 1):
        nxt = step(nxt, cache).argmax(-1, keepdim=True)


@torch.no_grad()
def count_host_ops(policy, msgs, rows: int, tokens: int) -> float:
    """Tensor ops per decode step (views excluded) that `decode_static` issues outside the step
    (`StaticDecoder._forward`, run eagerly here: on CUDA it is the captured graph, counter writes included)."""
    from bench_rollout import OpCounter

    from krill.models import decoding
    from krill.models.decoding import cache_kwarg
    from krill.models.static_decode import StaticDecoder

    count = OpCounter()
    # lookahead as on CUDA: each step queued before the stop checks
    decoder = StaticDecoder(policy.model, cache_kwarg(policy.model), compile_step=False, lookahead=True)
    step = decoder._forward

    def forward(*args):  # the step's own ops (one CUDA graph on a GPU) are not the host's
        count.paused += 1
        try:
            return step(*args)
        finally:
            count.paused -= 1

    def counted(*args, **kwargs):
        with count:
            return plain(*args, **kwargs)

    plain, policy.static = decoding.decode_static, decoder
    decoder._forward, decoding.decode_static = forward, counted
    try:
        policy.generate([msgs] * rows, max_new_tokens=tokens, stop=["\x00"])
    finally:
        decoding.decode_static = plain
    return count.ops / tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="tiny | random:<shape> | smollm2 | HF path")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of one krill call")
    ap.add_argument("--count-host-ops", action="store_true",
                    help="tensor ops per step the static loop issues outside the step, then exit")  # fmt: skip
    args = ap.parse_args()

    from krill.models.decoding import cache_kwarg
    from krill.models.local import LocalPolicy
    from krill.models.static_decode import StaticDecoder

    policy = LocalPolicy(
        args.model, prefix_cache_bytes=0, static_cache=False
    )  # no reuse: same work every call
    model, tok = policy.model, policy.tokenizer
    static = StaticDecoder(model, cache_kwarg(model))  # compiled on CUDA
    kw = cache_kwarg(model)

    def forward(nxt, cache):
        return model(input_ids=nxt, use_cache=True, **{kw: cache}).logits[:, -1]

    graph = (
        torch.compile(forward, mode="reduce-overhead", dynamic=False)
        if torch.cuda.is_available()
        else forward
    )

    def krill(batch, decoder, lookahead: bool = True):
        policy.static = decoder
        if decoder is not None:  # the same compiled step and captured graphs either way
            decoder.lookahead = lookahead
        return policy.generate(batch, max_new_tokens=args.tokens, stop=["\x00"])

    msgs = [{"role": "user", "content": "Instruction: i need a pair of waterproof hiking shoes. " * 8}]
    prompt = tok(policy.prompt_text(msgs), add_special_tokens=False)["input_ids"]
    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(
        f"machine: {where}; model {args.model} ({next(model.parameters()).dtype}); prompt {len(prompt)} tokens"
    )
    if args.count_host_ops:
        layers = model.config.num_hidden_layers
        for rows in (1, args.rows):
            ops = count_host_ops(policy, msgs, rows, args.tokens)
            print(f"rows {rows:>3}: {ops:.1f} tensor ops per step outside the step ({layers} layers)")
        return
    for rows in (1, args.rows):
        ids = torch.tensor([prompt] * rows, device=policy.device)
        # a stop string that never matches keeps krill's per-step stop check in the loop
        batch = [msgs] * rows
        krill(batch, static), hf_graph_loop(model, ids, args.tokens, graph)  # warm-up: capture, allocator
        krill(batch, None)
        dynamic_s = timed(lambda b=batch: krill(b, None))
        static_s = timed(lambda b=batch: krill(b, static))
        synced_s = timed(lambda b=batch: krill(b, static, lookahead=False))
        masked = timed(lambda i=ids: hf_loop(model, i, args.tokens, True))
        bare = timed(lambda i=ids: hf_loop(model, i, args.tokens, False))
        graphed = timed(lambda i=ids: hf_graph_loop(model, i, args.tokens, graph))
        ms = [1000 * t / args.tokens for t in (dynamic_s, static_s, masked, bare, graphed, synced_s)]
        print(f"rows {rows:>3}: krill {ms[0]:7.1f} ms/step   static {ms[1]:7.1f}   static-sync {ms[5]:7.1f}   "
              f"hf+mask {ms[2]:7.1f}   hf {ms[3]:7.1f}   hf-graph {ms[4]:7.1f}   krill/hf {ms[0] / ms[3]:.2f}x   "
              f"static/hf-graph {ms[1] / ms[4]:.2f}x   krill/static {ms[0] / ms[1]:.2f}x")  # fmt: skip
        for name, value, base in (("krill loop vs bare HF loop", ms[0], ms[3]),
                                  ("krill static loop vs graphed bare HF loop", ms[1], ms[4]),
                                  ("krill dynamic loop vs krill static loop", ms[0], ms[1]),
                                  ("krill static loop, host waits each step vs lookahead", ms[5], ms[1])):  # fmt: skip
            label = f"decode ms/step, {name}, {rows} rows ({args.model}, {where})"
            print("BENCH " + json.dumps({"name": label, "value": round(value, 2), "unit": "ms/step",
                                         "baseline": round(base, 2), "ratio": round(value / base, 2)}))  # fmt: skip
    from torch._dynamo.utils import counters  # a skipped capture runs compiled but launch by launch

    print(f"compiled graphs: {counters['stats']['unique_graphs']}; CUDA graphs skipped: "
          f"{counters['inductor']['cudagraph_skips']}")  # fmt: skip
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        for name, decoder in (("growing cache", None), ("static cache", static)):
            with profile(activities=acts) as prof:
                krill([msgs] * args.rows, decoder)
            print(f"-- {name}, {args.rows} rows")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
