"""Window vs conversation context, side by side on the same episodes: what an agent step costs.

    python benchmarks/bench_conversation.py                 # SmolLM2-135M (embedded), ALFWorld
    python benchmarks/bench_conversation.py --model tiny    # a quick run on the tiny random model

Three figures, each measured for both `agent.context` modes in one run:
1. training tokens per demo step: the same search-expert episodes as SFT rows (window: one
   ~700-token prompt per step; conversation: one chat per episode). Target: ≥ 5× fewer.
2. SFT wall time per demo step: one epoch of LoRA SFT on those rows (`train_sft`, unpadded rows).
3. rollout prefill tokens per step: greedy episodes of the policy, tokens actually run through the
   model as prompt (window with its prefix cache, conversation with the chat's states kept).
The embedded model is untrained, so its episodes run to the step cap in both modes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def build_cfg(args, context: str):
    from krill.config import load_config

    sets = [f"agent.context={context}", f"model.policy.model={args.model}", "env.alfworld.expert=search",
            f"env.alfworld.max_steps={args.steps}", "agent.constrain_actions=true",
            "agent.show_admissible=false" if context == "conversation" else "agent.show_admissible=true",
            "sft.epochs=1", "sft.batch_size=1", "sft.micro_batch_size=1", "sft.max_length=4096",
            "agent.max_prompt_length=4096", "model.policy.device=cpu"]  # fmt: skip
    return load_config(preset="quick", overrides=sets)


def demos_for(cfg, bank, episodes: int):
    """The first `episodes` successful search-expert episodes as demos of this mode (same seed: same episodes)."""
    from krill.train.demos import build_sft_demos

    conv = cfg.override({"agent.context": "conversation"})
    rows = build_sft_demos(bank, conv, "expert", n=1)  # one episode, to size the rest
    steps = rows[0]["meta"]["steps"]
    rows = build_sft_demos(bank, conv, "expert", n=steps * episodes)[:episodes]
    n = sum(r["meta"]["steps"] for r in rows)
    return (
        (rows, n) if cfg.agent.context == "conversation" else (build_sft_demos(bank, cfg, "expert", n=n), n)
    )


def train_cost(cfg, demos, steps: int) -> dict:
    from krill.models.chat_tokens import ChatTokens
    from krill.train.setup import load_training_policy
    from krill.train.sft import tokenize_demo, train_sft

    policy = load_training_policy(cfg)
    chat = ChatTokens(policy.tokenizer)
    tokens = sum(
        len(tokenize_demo(policy.tokenizer, d["messages"], cfg.sft.max_length, chat)[0]) for d in demos
    )
    with tempfile.TemporaryDirectory() as warm, tempfile.TemporaryDirectory() as out:
        train_sft(demos[:1], cfg, warm, policy=load_training_policy(cfg))  # kernels and allocator warm
        t0 = time.perf_counter()
        train_sft(demos, cfg, out, policy=policy)
        wall = time.perf_counter() - t0
    return {"rows": len(demos), "tokens_per_step": tokens / steps, "sft_s_per_step": wall / steps}


def rollout_cost(cfg, episodes: int) -> dict:
    from krill.agent.actors import LLMActor
    from krill.agent.rollout import run_episodes
    from krill.envs.pool import SerialPool
    from krill.models import build_policy

    policy = build_policy(cfg)
    pool = SerialPool(cfg.env.name, episodes, "train", cfg)
    try:
        tasks = pool.task_ids()[:episodes]
        t0 = time.perf_counter()
        trajs = run_episodes(LLMActor(policy, None, cfg), pool, tasks)
        wall = time.perf_counter() - t0
    finally:
        pool.close()
    steps = sum(len(t.steps) for t in trajs)
    return {
        "steps": steps,
        "prefill_per_step": policy.prefix_cache.prefilled_tokens / steps,
        "s_per_step": wall / steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="smollm2 | tiny | HF path")
    ap.add_argument("--episodes", type=int, default=3, help="demo episodes trained in each mode")
    ap.add_argument("--rollouts", type=int, default=8, help="episodes rolled out (batched) in each mode")
    ap.add_argument("--steps", type=int, default=15, help="env step cap")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()

    import torch

    from krill.formats.banks import load_bank

    torch.set_num_threads(args.threads)
    bank = load_bank(
        os.path.join(os.path.dirname(__file__), "..", "src", "krill", "data", "example_bank.json")
    )
    res = {}
    for context in ("window", "conversation"):
        cfg = build_cfg(args, context)
        demos, steps = demos_for(cfg, bank, args.episodes)
        res[context] = {
            **train_cost(cfg, demos, steps),
            **rollout_cost(cfg, args.rollouts),
            "demo_steps": steps,
        }
    w, c = res["window"], res["conversation"]
    print(f"model {args.model}; {args.threads} torch threads; {w['demo_steps']} demo steps "
          f"({args.episodes} search-expert episodes); {args.rollouts} rollouts, cap {args.steps} steps")  # fmt: skip
    print(f"{'':<34} {'window':>10} {'conversation':>13} {'ratio':>7}")
    for key, label in (("tokens_per_step", "training tokens per demo step"), ("sft_s_per_step", "SFT seconds per demo step"),
                       ("prefill_per_step", "rollout prefill tokens per step"), ("s_per_step", "rollout seconds per step")):  # fmt: skip
        print(f"{label:<34} {w[key]:>10.2f} {c[key]:>13.2f} {w[key] / c[key]:>6.1f}x")
    for key, unit, what in (("tokens_per_step", "tokens", "training tokens per demo step"),
                            ("sft_s_per_step", "s", "SFT wall time per demo step"),
                            ("prefill_per_step", "tokens", "rollout prefill tokens per step")):  # fmt: skip
        name = f"{what}, window vs conversation ({args.model})"
        print("BENCH " + json.dumps({"name": name, "value": round(c[key], 3), "unit": unit,
                                     "baseline": round(w[key], 3), "ratio": round(w[key] / c[key], 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
