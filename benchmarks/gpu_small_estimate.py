"""The `gpu-small` ablation's wall time, estimated from one measured GRPO iteration, one evaluation and
one short SFT of its shape, with krill's static-cache decoder on and off side by side (issue 34).

    python benchmarks/gpu_small_estimate.py [--out DIR] [--episodes 32] [--model random:qwen2.5-0.5b]
    python benchmarks/gpu_small_estimate.py --model tiny --device cpu --episodes 2 --sft-steps 32   # plumbing

Each arm runs the `krill` CLI as a user would (`--preset gpu-small --env webshop`, random weights of
Qwen2.5-0.5B's shape: the model packages do not travel to a GPU machine, and ALFWorld's TextWorld is not
installed there), one after the other on the same GPU:
  eval   a greedy evaluation of `--episodes` WebShop episodes (random weights never buy: every episode
         runs to the step cap, so the cost per step is an upper bound);
  rl     one GRPO iteration, 8 tasks × G=8, with `rl.guidance=mixed` so the groups differ and the
         update runs (rollouts, π_old pass, update: `time/*` in metrics.jsonl);
  sft    expert demos, then SFT on 512 demo steps for one epoch (its time per demo step).
Times are the work's own (an evaluation's `wall_time_s`, RL's `time/*`, SFT's "in Ns"), not process start;
the static decoder's compile and CUDA-graph captures (its logged `warmed in N s`) are taken out of them
and added once (`warmup_h`: `krill ablate` is one process, its policies of one shape share the graph).
The estimate scales those to the preset's ablation (`krill ablate --preset gpu-small`): 8 evaluations of
134 games × 30 steps, one SFT of 4,000 demo steps × 2 epochs, 4 GRPO runs × 20 iterations of 30-step
episodes, and evolution's validation (2 evolving variants × 4 cycles × 32 episodes). Steps scale
linearly; a 30-step episode's prompts are longer than a 15-step one's, so this is a lower bound on
per-step cost growth and an upper bound on episode length (random weights run to the cap).
Prints one `BENCH {json}` line per figure; writes `estimate.json` under `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BANK = "src/krill/data/example_bank.json"
ABLATION = dict(evals=8, eval_games=134, eval_steps=30, rl_runs=4, iterations=20, rl_steps=30,
                sft_demo_steps=4000, sft_epochs=2, validations=2 * 4, validation_episodes=32)  # fmt: skip
MEASURED_STEPS = 15  # WebShop's cap in the measurement


def krill(args: list[str], log: Path, static: bool, model: str, device: str) -> float:
    """Run `python -m krill ARGS` with the gpu-small settings; returns its wall seconds (fails loudly)."""
    sets = ["--preset", "gpu-small", "--env", "webshop", "--set", f"model.policy.model={model}",
            "--set", f"model.policy.device={device}", "--set", f"rl.max_steps={MEASURED_STEPS}",
            "--set", f"model.policy.static_cache={str(static).lower()}"]  # fmt: skip
    t0 = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run(
            [sys.executable, "-m", "krill", *sets, *args], stdout=fh, stderr=subprocess.STDOUT
        ).returncode
    if rc != 0:
        sys.exit(f"krill {' '.join(args[:1])} failed (exit {rc}); see {log}")
    return time.perf_counter() - t0


def warmup_in(log: Path) -> float:
    """Seconds the static decoder spent compiling and capturing (its `warmed in N s` lines): a
    one-time cost per process, kept out of the per-step figures and added once to the estimate."""
    return sum(float(x) for x in re.findall(r"warmed\s+in\s+([\d.]+)\s*s", log.read_text(errors="replace")))


def steps_in(path: Path) -> int:
    return sum(
        len(json.loads(line).get("steps", [])) for line in path.read_text().splitlines() if line.strip()
    )


def measure(
    out: Path, static: bool, episodes: int, model: str, device: str, sft_steps: int
) -> dict[str, float]:
    arm = out / ("static" if static else "dynamic")
    arm.mkdir(parents=True, exist_ok=True)
    krill(["eval", "--skill-bank", BANK, "--episodes", str(episodes), "--out", str(arm / "eval.json")],
                   arm / "eval.log", static, model, device)  # fmt: skip
    eval_warm = warmup_in(arm / "eval.log")
    eval_s = json.loads((arm / "eval.json").read_text())["wall_time_s"] - eval_warm  # the episodes' own
    eval_steps = steps_in(arm / "eval.trajectories.jsonl")
    krill(["--set", "evolution.enabled=false", "--set", "rl.guidance=mixed", "--set", "rl.guided_rollouts=2",
           "rl", "--skill-bank", BANK, "--iterations", "1", "--out", str(arm / "rl")], arm / "rl.log", static, model, device)  # fmt: skip
    row = json.loads((arm / "rl" / "metrics.jsonl").read_text().splitlines()[-1])
    rl_warm = warmup_in(arm / "rl.log")
    wall = krill(["--set", "sft.epochs=1", "sft", "--skill-bank", BANK, "--num-examples", str(sft_steps),
                   "--out", str(arm / "sft")], arm / "sft.log", static, model, device)  # fmt: skip
    said = re.search(r"^SFT: .* in (\d+)s$", (arm / "sft.log").read_text(), re.M)  # training, not the demos
    sft_s = float(said.group(1)) if said else wall
    return {
        "eval_s": eval_s, "eval_steps": eval_steps, "eval_s_per_step": eval_s / max(1, eval_steps),
        "rollout_s": row.get("time/rollout_s", 0.0) - rl_warm, "update_s": row.get("time/update_s", 0.0),
        "warmup_s": eval_warm + rl_warm,
        "update_skipped": row.get("update/skipped", 1.0), "sft_s_per_demo_step": sft_s / sft_steps,
    }  # fmt: skip


def estimate(m: dict[str, float]) -> dict[str, float]:
    """Hours of the gpu-small ablation from one arm's figures (see the module docstring)."""
    a, scale = ABLATION, ABLATION["rl_steps"] / MEASURED_STEPS
    evals = a["evals"] * a["eval_games"] * a["eval_steps"] * m["eval_s_per_step"]
    validation = a["validations"] * a["validation_episodes"] * a["eval_steps"] * m["eval_s_per_step"]
    rl = a["rl_runs"] * a["iterations"] * (m["rollout_s"] + m["update_s"]) * scale
    sft = a["sft_demo_steps"] * a["sft_epochs"] * m["sft_s_per_demo_step"]
    parts = {
        "evals_h": evals,
        "validation_h": validation,
        "rl_h": rl,
        "sft_h": sft,
        "warmup_h": m["warmup_s"],
    }
    parts = {k: v / 3600 for k, v in parts.items()}
    return {**parts, "total_h": sum(parts.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu_small_estimate")
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--model", default="random:qwen2.5-0.5b")
    ap.add_argument("--arms", default="dynamic,static", help="which decoders to measure, in order")
    ap.add_argument("--device", default="cuda", help="cuda (the figure) | cpu (plumbing only: not a figure)")
    ap.add_argument("--sft-steps", type=int, default=512, help="demo steps of the measured SFT")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KRILL_EMBEDDER", "hash")
    result = {}
    for arm in args.arms.split(","):
        m = measure(out, arm == "static", args.episodes, args.model, args.device, args.sft_steps)
        result[arm] = {"measured": m, "estimate": estimate(m)}
        e = result[arm]["estimate"]
        print(f"{arm}: eval {m['eval_s_per_step'] * 1000:.0f} ms/step, compile + captures {m['warmup_s']:.0f} s, "
              f"iteration {m['rollout_s']:.0f} s rollouts + "
              f"{m['update_s']:.0f} s update (skipped: {m['update_skipped']}), SFT {m['sft_s_per_demo_step']:.2f} "
              f"s/demo step → ablation ≈ {e['total_h']:.2f} h ({', '.join(f'{k} {v:.2f}' for k, v in e.items() if k != 'total_h')})")  # fmt: skip
        print("BENCH " + json.dumps({"name": f"gpu-small ablation estimate ({arm} decoder, {args.model})",
                                     "value": round(e["total_h"], 2), "unit": "h"}))  # fmt: skip
    if {"static", "dynamic"} <= result.keys():
        s, d = result["static"]["measured"], result["dynamic"]["measured"]
        print("BENCH " + json.dumps({"name": "gpu-small eval s/step, static vs dynamic decoder", "unit": "s/step",
                                     "value": round(s["eval_s_per_step"], 4), "baseline": round(d["eval_s_per_step"], 4),
                                     "ratio": round(d["eval_s_per_step"] / s["eval_s_per_step"], 2)}))  # fmt: skip
    (out / "estimate.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
