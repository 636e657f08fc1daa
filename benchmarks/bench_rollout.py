"""Batched rollout (8 episodes, one generate per step) vs one episode at a time, same model, side by side.

    python benchmarks/bench_rollout.py                      # SmolLM2-135M (embedded), CPU or GPU
    python benchmarks/bench_rollout.py --model tiny         # a quick run on the tiny random model
    python benchmarks/bench_rollout.py --think --max-new-tokens 64   # reasoning-length responses
    python benchmarks/bench_rollout.py --context conversation --steps 8   # episodes as chats
    python benchmarks/bench_rollout.py --model random:smollm2-360m --env webshop --episodes 32 \
        --serial-episodes 8 --max-new-tokens 32          # GPU: a real shape, random weights (gpu_check.sh)
    python benchmarks/bench_rollout.py ... --compare-decoders   # batched, krill's growing vs static KV cache
    python benchmarks/bench_rollout.py ... --sweep 64,128,256     # episodes in flight vs episode-steps/s

Both runs play the same tasks with the same greedy policy for `--steps` steps each, so they
generate (nearly) the same tokens; the figure is generated tokens per second of wall time, prompt
processing included (`--serial-episodes N` plays only the first N episodes one at a time: its rate
is per token, and a slow baseline need not replay all of them). Target: batched ≥ 4× one-at-a-time
on CPU, ≥ 10× at 32 episodes on a GPU. On CPU a step is prefill-bound (prefill
is compute-bound and does not batch), so short bare-action responses gain less than long ones.
With `--context conversation` a step prefills only its new turn (the prefix cache holds the rest
of the chat), so more of the step is decode, which batches: the CPU target is ≥ 4× there too.
`--compare-decoders` plays the batched rollout twice instead, on the growing cache (`decoding.decode`, the
prefix cache) and on the static cache (`decoding.decode_static`, a CUDA graph per bucket on a GPU, the
chats kept in its slots, `chat_slots.py`): issue 34's target is ≥ 10× generated tokens/s for the static
one at the same batch on a GPU. It then counts each one's tensor ops per step, the host work a GPU
waits on (`--no-count-ops`: skipped). `--sweep N,N,...` plays the batched rollout (the policy's own
decoder) at each number of episodes in flight and prints episode-steps per second: the `gpu-small`
preset's batch sizes follow where that stops growing (issue 34).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"


def run(actor, pool_factory, tasks, cfg, steps):
    from krill.agent.rollout import run_episodes

    pool = pool_factory()
    reset = getattr(actor.policy, "reset_prefix_cache", None)
    if reset is not None:  # each mode starts cold: no reuse of the other mode's cached prompts
        reset()
    try:
        t0 = time.perf_counter()
        trajs = run_episodes(actor, pool, tasks, max_steps=steps)
        wall = time.perf_counter() - t0
    finally:
        pool.close()
    gen = sum(s.model_extra.get("response_tokens", 0) for t in trajs for s in t.steps)
    cache = getattr(actor.policy, "prompt_cache", None)
    # tokens actually run through the model as prompt (the cache's reuse excluded), else all of them
    prompt = (
        cache.prefilled_tokens
        if cache is not None
        else sum(s.model_extra.get("prompt_tokens", 0) for t in trajs for s in t.steps)
    )
    return trajs, wall, gen, prompt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="smollm2 | tiny | HF path")
    ap.add_argument("--env", default="alfworld", help="alfworld | webshop")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="steps per episode")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--think", action="store_true", help="ask for <think>…</think> before the action")
    ap.add_argument("--context", default="window", choices=["window", "conversation"], help="agent.context")
    ap.add_argument("--serial-episodes", type=int, default=0, help="episodes played one at a time (0: all)")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--compare-decoders", action="store_true", help="batched: growing vs static KV cache")
    ap.add_argument("--constrain", action="store_true", help="agent.constrain_actions: whole-action choices")
    ap.add_argument(
        "--no-count-ops", action="store_true", help="--compare-decoders: skip the (slow) counted passes"
    )
    ap.add_argument(
        "--sweep", default="", help="episodes in flight to measure, comma-separated (e.g. 64,128,256)"
    )
    args = ap.parse_args()
    sweep = [int(n) for n in args.sweep.split(",") if n.strip()]
    args.episodes = max([args.episodes, *sweep])  # the policy's batch holds the largest size: one call a step

    import torch

    from krill.agent.actors import LLMActor
    from krill.config import KrillConfig
    from krill.envs.base import ENVS, _import_builtin_envs
    from krill.envs.pool import SerialPool
    from krill.models import build_policy

    torch.set_num_threads(args.threads)
    _import_builtin_envs()
    env = args.env if args.env in ENVS else "webshop"
    if env != args.env:
        print(f"note: env {args.env!r} is not available here; using {env}")
    cfg = KrillConfig().override(
        {"env.name": env, "model.policy.model": args.model, "model.policy.max_new_tokens": args.max_new_tokens,
         "model.policy.batch_size": args.episodes, "model.policy.dtype": args.dtype, "agent.think": args.think,
         "agent.context": args.context, "agent.history_window": 2, "agent.constrain_actions": args.constrain}
    )  # fmt: skip
    policy = build_policy(cfg)
    actor = LLMActor(policy, None, cfg)
    tasks = SerialPool(env, 1, "train", cfg).task_ids()[: args.episodes]
    print(f"machine: {machine()}; model {args.model}; env {env}; {len(tasks)} episodes × {args.steps} steps; "
          f"max_new_tokens {args.max_new_tokens}; think {args.think}; context {args.context}")  # fmt: skip

    run(actor, lambda: SerialPool(env, 1, "train", cfg), tasks[:1], cfg, 1)  # warm-up (weights, kernels)
    if args.compare_decoders:
        return compare_decoders(actor, env, tasks, cfg, args)
    if sweep:
        return sweep_batch(actor, env, tasks, cfg, args, sweep)
    b_trajs, b_wall, b_gen, b_prompt = run(
        actor, lambda: SerialPool(env, len(tasks), "train", cfg), tasks, cfg, args.steps
    )
    serial_tasks = tasks[: args.serial_episodes or len(tasks)]
    s_trajs, s_wall, s_gen, s_prompt = run(
        actor, lambda: SerialPool(env, 1, "train", cfg), serial_tasks, cfg, args.steps
    )
    same = sum(
        a.action == b.action
        for x, y in zip(b_trajs, s_trajs, strict=False)
        for a, b in zip(x.steps, y.steps, strict=False)
    )
    total = sum(len(t.steps) for t in s_trajs)
    b_tps, s_tps = b_gen / b_wall, s_gen / s_wall
    print(
        f"{'mode':<16} {'wall s':>8} {'gen tok':>8} {'gen tok/s':>10} {'prefilled':>11} {'prefill tok/s':>13}"
    )
    print(
        f"{'batched x' + str(len(tasks)):<16} {b_wall:>8.1f} {b_gen:>8} {b_tps:>10.1f} {b_prompt:>11} {b_prompt / b_wall:>13.0f}"
    )
    print(
        f"{'one at a time x' + str(len(serial_tasks)):<16} {s_wall:>8.1f} {s_gen:>8} {s_tps:>10.1f} {s_prompt:>11} {s_prompt / s_wall:>13.0f}"
    )
    ratio = b_tps / s_tps
    target = 10 if torch.cuda.is_available() else 4
    per_episode = (s_wall / len(serial_tasks)) / (b_wall / len(tasks))
    print(f"speed-up (generated tokens/s): {ratio:.2f}x  (target ≥ {target}x: {'PASS' if ratio >= target else 'below'}); "
          f"wall time per episode {per_episode:.2f}x; same actions in {same}/{total} steps")  # fmt: skip
    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    name = f"rollout gen tok/s, batch {len(tasks)} vs 1 ({args.model}, {args.context}, {where})"
    print("BENCH " + json.dumps({"name": name, "value": round(b_tps, 1), "unit": "tok/s", "baseline": round(s_tps, 1),
                                 "ratio": round(ratio, 2)}))  # fmt: skip


def compare_decoders(actor, env, tasks, cfg, args) -> None:
    """The batched rollout on the growing cache, then on the static one (same tasks, same policy)."""
    import torch
    from torch._dynamo.utils import counters

    from krill.envs.pool import SerialPool

    policy = actor.policy
    figures, warm = {}, {}
    for name in ("dynamic", "static", "dynamic", "static"):  # the first pass of each captures/warms
        policy.use_static_cache(name == "static")  # static: the chats kept in its slots (chat_slots.py)
        policy.reset_prefix_cache()
        trajs, wall, gen, _ = run(
            actor, lambda: SerialPool(env, len(tasks), "train", cfg), tasks, cfg, args.steps
        )
        steps = sum(len(t.steps) for t in trajs)
        warm.setdefault(name, wall)  # the first pass: compiles and CUDA-graph recordings included
        figures[name] = (gen / wall, steps / wall, [s.action for t in trajs for s in t.steps])
    same = sum(a == b for a, b in zip(figures["dynamic"][2], figures["static"][2], strict=False))
    (d_tps, d_sps, _), (s_tps, s_sps, _) = figures["dynamic"], figures["static"]
    print(f"batched x{len(tasks)}: growing cache {d_tps:.1f} gen tok/s ({d_sps:.2f} steps/s), static cache "
          f"{s_tps:.1f} ({s_sps:.2f}): {s_tps / d_tps:.2f}x; same actions in {same}/{len(figures['static'][2])} steps; "
          f"first passes {warm['dynamic']:.1f} s / {warm['static']:.1f} s (compiles: "
          f"{counters['stats']['unique_graphs']} graphs; CUDA graphs skipped: {counters['inductor']['cudagraph_skips']})")  # fmt: skip
    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    name = f"rollout gen tok/s, static vs growing KV cache, batch {len(tasks)} ({args.model}, {args.context}, {where})"
    print("BENCH " + json.dumps({"name": name, "value": round(s_tps, 1), "unit": "tok/s", "baseline": round(d_tps, 1),
                                 "ratio": round(s_tps / d_tps, 2)}), flush=True)  # fmt: skip
    if args.no_count_ops:
        return
    ops = {}
    try:  # a third pass each, counted (slower): host work a GPU waits on; printed last, as it may fail
        for name in ("dynamic", "static"):  # under a dispatch mode around captured graphs
            policy.use_static_cache(name == "static")
            policy.reset_prefix_cache()
            with OpCounter() as counter:
                run(actor, lambda: SerialPool(env, len(tasks), "train", cfg), tasks, cfg, args.steps)
            ops[name] = counter.ops / max(1, args.steps)
    except Exception as e:  # the timings above stand without it
        print(f"tensor ops not counted: {type(e).__name__}: {e}")
        return
    print(f"tensor ops per batched step (≈ kernel launches on a GPU): growing {ops['dynamic']:.0f}, "
          f"static {ops['static']:.0f}")  # fmt: skip
    name = f"tensor ops per rollout step, static vs growing KV cache, batch {len(tasks)} ({args.model}, {args.context})"
    print("BENCH " + json.dumps({"name": name, "value": round(ops["static"]), "unit": "ops/step",
                                 "baseline": round(ops["dynamic"]), "ratio": round(ops["static"] / ops["dynamic"], 2)}))  # fmt: skip


def sweep_batch(actor, env, tasks, cfg, args, sizes: list[int]) -> None:
    """Episode-steps per second with `sizes` episodes in flight (each size played twice: warm, measured)."""
    from krill.envs.pool import SerialPool

    for n in sizes:
        for _ in range(2):  # the first pass captures the new buckets' graphs (on CUDA) and warms
            actor.policy.reset_prefix_cache()
            trajs, wall, gen, _ = run(
                actor, lambda n=n: SerialPool(env, n, "train", cfg), tasks[:n], cfg, args.steps
            )
        rate = sum(len(t.steps) for t in trajs) / wall
        print(
            f"{n:>4} episodes in flight: {rate:8.2f} episode-steps/s, {gen / wall:8.1f} gen tok/s, {wall:.1f} s"
        )
        print("BENCH " + json.dumps({"name": f"episode-steps/s, {n} in flight ({args.model}, {args.context})",
                                     "value": round(rate, 2), "unit": "episode-steps/s"}))  # fmt: skip


class OpCounter:
    """Counts the tensor operations run (views excluded): each is a kernel launch on a GPU, so their
    number per step is the host-side work a device waits on, measurable on a CPU. Ops run while
    `paused` > 0 are not counted (a captured step's, which the GPU replays as one launch)."""

    paused = 0

    def __enter__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                counter.ops += not func.is_view and not counter.paused
                return func(*args, **(kwargs or {}))

        self.ops, self._mode = 0, Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)


if __name__ == "__main__":
    main()
