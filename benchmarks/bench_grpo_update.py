"""Where one GRPO iteration's time goes, and what removing the avoidable passes saves, side by side.

    python benchmarks/bench_grpo_update.py --init runs/quick/sft --bank runs/quick/banks/cycle_0.json
    python benchmarks/bench_grpo_update.py --model tiny          # a quick run on the tiny random model

One iteration of the quick preset's shape (2 tasks × G=4, 12-step ALFWorld episodes, conversation,
whole-action choice) is rolled out once; then, on the same samples and the same weights:
- naive: π_old recomputed in a no-grad pass, π_ref in another (adapter swapped), then the training
  pass (what every iteration paid before: `rl.kl_coef` 0.01 and a recomputed π_old);
- fast: the training pass alone (`rl.ppo_epochs: 1` makes π_old the policy itself, detached, and
  `rl.kl_coef: 0` needs no reference).
Also token mode vs choice mode for the training pass (what scoring every admissible action costs).
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--init", default=None, help="an SFT adapter (e.g. runs/quick/sft)")
    ap.add_argument("--bank", default=None, help="the bank its prompts retrieve from")
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()

    import torch

    from krill.agent.actors import LLMActor
    from krill.agent.rollout import run_episodes
    from krill.config import load_config
    from krill.envs.pool import make_pool
    from krill.formats.banks import load_bank
    from krill.skills.retrieval import make_retriever
    from krill.train.grpo import group_advantages
    from krill.train.samples import build_samples, shaped_rewards
    from krill.train.setup import load_training_policy, make_accelerator, pad_id
    from krill.train.update import _old_and_reference_logprobs, reference_state, score_batch

    torch.manual_seed(0)
    cfg = load_config(preset="quick", overrides=[f"model.policy.model={args.model}", "model.policy.device=cpu",
                                                  f"rl.max_steps={args.steps}", "env.alfworld.reward=progress"])  # fmt: skip
    policy = load_training_policy(cfg, args.init)
    bank = load_bank(args.bank) if args.bank else None
    retriever = make_retriever(bank, cfg) if bank else None
    actor = LLMActor(policy, retriever, cfg, cfg.sampling("rollout"), want_logprobs=True, seed=7)
    with make_pool(cfg, "train", 8) as pool:
        tasks = pool.task_ids()[:2]
        t0 = time.perf_counter()
        trajs = run_episodes(actor, pool, [t for t in tasks for _ in range(4)], max_steps=args.steps)
        rollout_s = time.perf_counter() - t0
    rewards = shaped_rewards(trajs, 0.1)
    adv = group_advantages(rewards, torch.tensor([0] * 4 + [1] * 4))
    adv = torch.where(adv == 0, torch.ones_like(adv), adv)  # time every episode, informative or not
    accel = make_accelerator(cfg)
    model, pid, end = policy.model, pad_id(policy.tokenizer), policy.tokenizer.eos_token_id
    ref = reference_state(model, __import__("pathlib").Path("/tmp/krill-bench-ref"), False, accel)

    def timed(choice: bool, naive: bool) -> dict[str, float]:
        samples = build_samples(trajs, adv, policy.tokenizer, choice=choice)
        rl = cfg.rl.model_copy(update={"kl_coef": 0.01 if naive else 0.0, "ppo_epochs": 2 if naive else 1})
        c = cfg.model_copy(update={"rl": rl})
        score = lambda m, b, entropy=False: score_batch(m, b, c, pid, end, accel.device, entropy=entropy)  # noqa: E731
        t0 = time.perf_counter()
        _old_and_reference_logprobs(model, [samples], accel, score, ref, rl)
        t1 = time.perf_counter()
        model.train()
        for s in samples:  # one sample per micro-batch, as the quick preset packs them
            out = score(model, [s], entropy=True)
            ((out.logp * out.advantages).sum() * 0.0 + out.logp.sum()).backward()
        model.zero_grad(set_to_none=True)
        model.eval()
        return {"old_ref_s": t1 - t0, "train_s": time.perf_counter() - t1, "samples": len(samples)}

    choice_naive, choice_fast = timed(True, True), timed(True, False)
    token_fast = timed(False, False)
    naive = choice_naive["old_ref_s"] + choice_naive["train_s"]
    fast = choice_fast["old_ref_s"] + choice_fast["train_s"]
    steps = sum(len(t.steps) for t in trajs)
    print(f"rollout: {len(trajs)} episodes, {steps} steps, {rollout_s:.1f} s")
    print(f"update, choice mode, naive (π_old + π_ref passes + training pass): {naive:.1f} s "
          f"(old/ref {choice_naive['old_ref_s']:.1f} s)")  # fmt: skip
    print(f"update, choice mode, fast (training pass only): {fast:.1f} s  → {naive / fast:.2f}× faster")
    print(f"training pass, token mode (chosen action's tokens only): {token_fast['train_s']:.1f} s; "
          f"choice mode costs {choice_fast['train_s'] / token_fast['train_s']:.2f}× that")  # fmt: skip
    for name, value, base in (("grpo_update_choice_fast_s", fast, naive),
                              ("grpo_rollout_8x12_s", rollout_s, None)):  # fmt: skip
        row = {"name": name, "value": round(value, 2), "unit": "s"}
        if base:
            row.update(baseline=round(base, 2), ratio=round(base / value, 2))
        print("BENCH " + json.dumps(row))


if __name__ == "__main__":
    main()
