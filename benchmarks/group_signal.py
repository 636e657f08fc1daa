"""Which rollout temperature gives GRPO groups with both wins and losses? Measured, not assumed.

    python benchmarks/group_signal.py --init runs/quick/sft --bank runs/quick/banks/cycle_0.json
    python benchmarks/group_signal.py --init ... --temperatures 0.5,1.0,1.5 --tasks 6

The same train tasks, G rollouts each, sampled from the choice policy π_T at every temperature (the
quick preset's conversation + whole-action choice, 12-step cap, unguided): per temperature, the win
rate, the groups whose outcomes differ (some won, some lost: outcome-only GRPO learns from these),
and the groups whose progress returns differ (`env.alfworld.reward: progress`).
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", default=None, help="an SFT adapter")
    ap.add_argument("--bank", default=None)
    ap.add_argument("--temperatures", default="0.5,1.0,1.5")
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()

    from krill.agent.actors import LLMActor
    from krill.agent.rollout import run_episodes
    from krill.config import load_config
    from krill.envs.pool import make_pool
    from krill.formats.banks import load_bank
    from krill.skills.retrieval import make_retriever
    from krill.train.rl import pick_tasks
    from krill.train.setup import load_training_policy

    cfg = load_config(
        preset="quick", overrides=["env.alfworld.reward=progress", f"rl.max_steps={args.steps}"]
    )
    policy = load_training_policy(cfg, args.init)
    retriever = make_retriever(load_bank(args.bank), cfg) if args.bank else None
    G = args.group_size
    print(f"{args.tasks} train tasks × G={G}, {args.steps}-step cap")
    print("T     | won       | groups with wins and losses | groups whose progress differs")
    with make_pool(cfg, "train", 8) as pool:
        tasks = pick_tasks(pool.task_ids(), 0, args.tasks, seed=11)
        for temp in [float(t) for t in args.temperatures.split(",")]:
            sampling = cfg.override({"rl.temperature": temp}).sampling("rollout")
            actor = LLMActor(policy, retriever, cfg, sampling, want_logprobs=True, seed=5)
            trajs = run_episodes(actor, pool, [t for t in tasks for _ in range(G)], max_steps=args.steps)
            groups = [trajs[i : i + G] for i in range(0, len(trajs), G)]
            wins = sum(t.success for t in trajs)
            mixed = sum(0 < sum(t.success for t in g) < G for g in groups)
            varied = sum(len({round(t.total_reward, 6) for t in g}) > 1 for g in groups)
            print(
                f"{temp:<5} | {wins:>2}/{len(trajs):<6} | {mixed}/{len(groups):<26} | {varied}/{len(groups)}"
            )


if __name__ == "__main__":
    main()
