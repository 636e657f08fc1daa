#!/usr/bin/env bash
# Sizing the gpu-small preset on one GPU: the two costs that set the ablation's wall time, measured
# with random weights of Qwen2.5-0.5B's shape (the model packages do not travel to the GPU machine):
#   1. a greedy evaluation of 64 WebShop episodes (the ablation runs 8 evaluations of 134 games);
#   2. one GRPO iteration (8 tasks × G=8 rollouts + the update; the ablation runs 4 × 20 of them).
# Random weights never win, so every episode runs to the step cap: an upper bound per episode.
# Usage: bash benchmarks/gpu_small_sizing.sh OUT_DIR      (the device: run(... carry=[".whl"]))
set -uo pipefail
out="${1:-/tmp/gpu-small-sizing}"; mkdir -p "$out"; out="$(cd "$out" && pwd)"
py="${PYTHON:-python3}"
"$py" -c "import pydantic, typer, tenacity, bm25s" 2>/dev/null || "$py" -m pip install -q --no-deps .whl/*.whl
export PYTHONPATH="$PWD/src" KRILL_EMBEDDER=hash KRILL_CACHE="$(mktemp -d)" PYTHONUNBUFFERED=1
sets=(--preset gpu-small --env webshop --set model.policy.model=random:qwen2.5-0.5b --set model.policy.device=cuda
      --set rl.max_steps=15)  # WebShop's own cap (ALFWorld's games are not on the GPU machine)
bank=src/krill/data/example_bank.json
timed() { local name="$1"; shift; local t0 t1; t0=$(date +%s.%N)
  timeout 240 "$@" > "$out/$name.log" 2>&1; local rc=$?; t1=$(date +%s.%N)
  awk -v n="$name" -v rc="$rc" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\texit %s\t%.1f s\n", n, rc, b - a }' \
    | tee -a "$out/sizing.tsv"; }
: > "$out/sizing.tsv"
timed eval_64_episodes "$py" -m krill "${sets[@]}" eval --skill-bank "$bank" --episodes 64 --out "$out/eval.json"
timed rl_1_iteration "$py" -m krill "${sets[@]}" --set evolution.enabled=false rl --skill-bank "$bank" \
  --iterations 1 --out "$out/rl"
nvidia-smi --query-gpu=name,memory.used --format=csv >> "$out/sizing.tsv" 2>/dev/null
cp "$out/rl/metrics.jsonl" "$out/rl_metrics.jsonl" 2>/dev/null; rm -rf "$out/rl"
