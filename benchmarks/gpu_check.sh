#!/usr/bin/env bash
# The GPU path in one go (≤ 8 min on one H100): deps, `pytest -m gpu`, rollout throughput, end-to-end train.
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--dry-run] [--wheels DIR] [--real-train] [--estimate]
#   bash benchmarks/gpu_check.sh --decoder [--budget 540] [--out DIR]   # issue 34's figures, one call
#
#   --out DIR     where the figures go (default gpu_check/): summary.md (the table), summary.json,
#                 gpu_tests.json (what each GPU test measured) and log.txt (every step's output)
#   --dry-run     on a machine without CUDA: run every step that does not need it, skip (and name)
#                 the ones that do
#   --wheels DIR  wheels for what the GPU image lacks (default .whl/, made by benchmarks/gpu_wheels.sh)
#   --real-train  also step 5 (about 4 more minutes on an H100 machine: 96 s GPU + 142 s on 16 cores)
#   --estimate    also step 6 (several minutes: give it a call of its own when device time is short)
#   --decoder     instead of steps 2-6, what issue 34's "Done when" needs, most needed first, in one
#                 device call: the static-cache GPU tests; gpu-small's shape (random Qwen2.5-0.5B,
#                 64 constrained chats) on the growing vs static cache; the gpu-small estimate (static
#                 arm: eval, one GRPO iteration, a short SFT); 32 free-text chats growing vs static
#                 (the >= 10x target); the decode step vs a CUDA-graphed bare forward (the 1.2x target);
#                 episode-steps/s at 64/128/256 chats (the preset's batch sizes); the other GPU tests
#   --budget S    stop starting steps after S seconds and cut the running one at S (default: none;
#                 540 with --decoder, which fits one 600 s device call)
#
# Steps:
#   1. deps        import what the check needs; install the carried wheels (--no-deps) if any is missing
#   2. gpu tests   pytest -m gpu tests/gpu (tiny model + random weights of SmolLM2-135M's shape)
#   3. rollout     batched (32 episodes) vs one at a time, generated tokens/s, random:smollm2-360m, bf16,
#                  each step a fresh window, then episodes as chats (agent.context=conversation);
#                  then the same chats on krill's growing vs static KV cache (issue 34: ≥ 10x), and
#                  gpu-small's shape (random Qwen2.5-0.5B, 64 chats, whole-action choices) the same way;
#                  then krill's decoding loops vs bare HF loops, eager and CUDA-graphed, ms per step
#                  (issue 34: krill's static step within 1.2x of the graphed bare one at 32 rows)
#   4. train       `krill --preset tiny train` (WebShop, hash embedder) on the GPU, then on CPU cores
#   5. train-real  (--real-train) the same with random:smollm2-135m, the default policy's shape
#   6. estimate    (--estimate) one GRPO iteration, one evaluation and a short SFT of the gpu-small shape
#                  (random Qwen2.5-0.5B weights, WebShop), growing vs static cache, and the gpu-small
#                  ablation's wall time estimated from them (benchmarks/gpu_small_estimate.py)
# Steps 1-4 took 4 min 5 s on one H100 before the decode-overhead step was added (docs/benchmarks.md).
# The summary is rewritten after every step, so a run cut short still leaves its figures.
# No step downloads anything: models are built in-process, the environment is the offline WebShop.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="gpu_check"
dry=0
wheels=".whl"
real=0
estimate=0
decoder=0
budget=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --wheels) wheels="$2"; shift 2 ;;
    --real-train) real=1; shift ;;
    --estimate) estimate=1; shift ;;
    --decoder) decoder=1; shift ;;
    --budget) budget="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "${PYTHON:-}" ]; then py="$PYTHON"
elif [ -x "${KRILL_VENV:-.venv}/bin/python" ]; then py="${KRILL_VENV:-.venv}/bin/python"
else py="python3"; fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d -t krill-gpu-check.XXXXXX)"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export KRILL_CACHE="$work/cache" KRILL_EMBEDDER=hash KRILL_GPU_CHECK_OUT="$out"
log="$out/log.txt"
: > "$log"
rm -f "$out/gpu_tests.json"
steps="$work/steps.tsv"  # step <tab> status <tab> seconds <tab> note
: > "$steps"

say() { echo "== $*" | tee -a "$log"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$steps"; summarize; }
summarize() { "$py" benchmarks/gpu_summary.py "$steps" "$out" "$work" > /dev/null 2>> "$log"; }
[ "$decoder" -eq 1 ] && budget="${budget:-540}"
case "${budget:-0}" in ''|*[!0-9]*) echo "gpu_check.sh: --budget takes whole seconds, not '$budget'" >&2; exit 2 ;; esac
deadline=$(( $(date +%s) + ${budget:-1000000} ))
# timed NAME LIMIT_S CMD...: runs CMD (output into the log), records ok/fail/timeout and the wall time;
# past the budget's deadline a step is skipped, and one running into it is cut there
timed() {
  local name="$1" limit="$2"; shift 2
  local left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 30 ]; then skip "$name" "out of --budget ($budget s)"; return 0; fi
  [ "$left" -lt "$limit" ] && limit="$left"
  say "$name: $*"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout "$limit" "$@" >> "$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  local status="ok"
  [ "$rc" -ne 0 ] && status="fail (exit $rc)"
  [ "$rc" -eq 124 ] && status="timeout (${limit}s)"
  say "$name: $status in ${secs}s"
  record "$name" "$status" "$secs" "${NOTE:-}"
  return "$rc"
}
skip() { say "$1: skipped ($2)"; record "$1" "skipped" "" "$2"; }

# -- 0. the machine ------------------------------------------------------------------------------
cuda=$("$py" -c 'import torch; print(int(torch.cuda.is_available()))' 2>> "$log" || echo 0)
"$py" - "$work/machine.json" >> "$log" 2>&1 <<'EOF'
import json, os, platform, sys, torch
from importlib import metadata
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
info = {"gpu": gpu, "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if gpu else None,
        "cpu_cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, **{n: version(n) for n in ("transformers", "peft", "accelerate", "pydantic", "typer")}}
print(json.dumps(info))
json.dump(info, open(sys.argv[1], "w"))
EOF
if [ "$cuda" != "1" ] && [ "$dry" -eq 0 ]; then
  echo "gpu_check.sh: no CUDA GPU here (torch.cuda.is_available() is False); use --dry-run on a CPU machine" >&2
  exit 2
fi
mode="GPU"; [ "$cuda" != "1" ] && mode="dry run (no CUDA)"
say "krill gpu check: $mode; python $py; out $out"

# -- 1. deps ---------------------------------------------------------------------------------------
check_imports() { "$py" -c 'import pydantic, tenacity, bm25s, typer, peft, accelerate, transformers, pytest, krill.cli.main' 2>> "$log"; }
if check_imports; then
  record deps ok 0 "everything imports"
elif ls "$wheels"/*.whl > /dev/null 2>&1; then
  NOTE="installed $(ls "$wheels"/*.whl | wc -l) carried wheels" timed deps 120 \
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" "$wheels"/*.whl
  export PYTHONPATH="$work/site:$PYTHONPATH"
  check_imports || { say "deps: still missing after installing the wheels; stopping"; record deps fail 0 "imports fail"; exit 1; }
else
  say "deps: imports fail and no wheels in $wheels (run benchmarks/gpu_wheels.sh where pip has network)"
  record deps fail 0 "no wheels"; exit 1
fi

# the table, where it is, and exit 1 if any step failed or timed out
finish() {
  summarize
  cat "$out/summary.md"
  say "figures in $out (summary.md, summary.json, gpu_tests.json, log.txt)"
  local failed
  failed=$(awk -F'\t' '$2 ~ /^(fail|timeout)/' "$steps" | wc -l)
  rm -rf "$work"
  [ "$failed" -eq 0 ] || { echo "gpu_check.sh: $failed step(s) failed; see $log" >&2; exit 1; }
  exit 0
}

# the growing vs static KV cache comparisons both plans run (issue 34), and their CPU plumbing
free_chats=(benchmarks/bench_rollout.py --model random:smollm2-360m --env webshop --episodes 32 --steps 6
  --max-new-tokens 32 --threads 8 --context conversation --compare-decoders --no-count-ops)
choice_chats=(benchmarks/bench_rollout.py --model random:qwen2.5-0.5b --env webshop --episodes 64
  --context conversation --constrain --threads 8)  # gpu-small's shape
decode_overhead=(benchmarks/bench_decode_overhead.py --model random:smollm2-360m --rows 32 --tokens 64)
static_plumbing=(benchmarks/bench_rollout.py --model tiny --env webshop --episodes 4 --steps 2 --max-new-tokens 8
  --context conversation --constrain --compare-decoders)

# -- issue 34's figures in one call (--decoder) --------------------------------------------------------
if [ "$decoder" -eq 1 ]; then
  if [ "$cuda" = "1" ]; then
    NOTE="tiny model: graph step, slots, trie pass vs the growing path" timed gpu-tests-static 150 \
      "$py" -m pytest -q -m gpu tests/gpu/test_gpu_static.py -p no:cacheprovider -rs
    NOTE="gpu-small's shape: 64 chats, whole-action choices, growing vs static KV cache" \
      timed rollout-static-choices 180 "$py" "${choice_chats[@]}" --steps 4 --compare-decoders --no-count-ops
    NOTE="static arm: eval 16 episodes, one GRPO iteration, SFT 128 demo steps" timed estimate 300 \
      "$py" benchmarks/gpu_small_estimate.py --out "$out/estimate" --arms static --episodes 16 --sft-steps 128
    NOTE="32 chats, 32-token free answers, growing vs static KV cache" timed rollout-static 240 \
      "$py" "${free_chats[@]}"
    NOTE="krill's loops vs bare HF loops, eager and CUDA-graphed, ms/step" timed decode-overhead 150 \
      "$py" "${decode_overhead[@]}"
    NOTE="gpu-small's shape, episode-steps/s per number in flight" timed sweep 180 \
      "$py" "${choice_chats[@]}" --steps 3 --sweep 64,128,256
    NOTE="the rest of pytest -m gpu" timed gpu-tests 240 \
      "$py" -m pytest -q -m gpu tests/gpu -p no:cacheprovider -rs --ignore tests/gpu/test_gpu_static.py
  else
    NOTE="collected, skipped without CUDA" timed gpu-tests-static 120 \
      "$py" -m pytest -q -m gpu tests/gpu/test_gpu_static.py -p no:cacheprovider -rs
    NOTE="plumbing only, tiny model on CPU" timed rollout-static-plumbing 120 \
      "$py" "${static_plumbing[@]}" --no-count-ops
    skip estimate "needs CUDA"
    NOTE="plumbing only, tiny model on CPU" timed sweep-plumbing 120 \
      "$py" benchmarks/bench_rollout.py --model tiny --env webshop --context conversation --constrain \
      --steps 2 --sweep 2,4
  fi
  finish
fi

# -- 2. gpu tests ------------------------------------------------------------------------------------
if [ "$cuda" = "1" ]; then
  NOTE="pytest -m gpu" timed gpu-tests 300 "$py" -m pytest -q -m gpu tests/gpu -p no:cacheprovider -rs
else
  # collected and skipped without CUDA: proves the marker and the skip work here
  NOTE="collected, skipped without CUDA" timed gpu-tests 120 "$py" -m pytest -q -m gpu tests/gpu -p no:cacheprovider -rs
fi

# -- 3. rollout throughput -----------------------------------------------------------------------------
if [ "$cuda" = "1" ]; then
  NOTE="random:smollm2-360m bf16, 32 episodes x 3 steps, 32 new tokens" timed rollout 240 \
    "$py" benchmarks/bench_rollout.py --model random:smollm2-360m --env webshop --episodes 32 \
    --serial-episodes 4 --steps 3 --max-new-tokens 32 --threads 8
  NOTE="the same, episodes as chats (agent.context=conversation), 6 steps" timed rollout-conversation 240 \
    "$py" benchmarks/bench_rollout.py --model random:smollm2-360m --env webshop --episodes 32 \
    --serial-episodes 4 --steps 6 --max-new-tokens 32 --threads 8 --context conversation
  NOTE="the same chats, batched, growing vs static KV cache" timed rollout-static 240 "$py" "${free_chats[@]}"
  NOTE="gpu-small's shape: 64 chats, whole-action choices, growing vs static KV cache" timed rollout-static-choices 240 \
    "$py" "${choice_chats[@]}" --steps 6 --compare-decoders --no-count-ops
  NOTE="krill's loop vs a bare HF loop, ms/step, random:smollm2-360m bf16" timed decode-overhead 120 \
    "$py" "${decode_overhead[@]}" --profile
else
  skip rollout "needs CUDA (the figure is GPU throughput)"
  NOTE="plumbing only, tiny model on CPU: not a figure" timed rollout-plumbing 120 \
    "$py" benchmarks/bench_rollout.py --model tiny --env webshop --episodes 4 --serial-episodes 2 --steps 1 --max-new-tokens 8
  NOTE="plumbing only, tiny model on CPU" timed rollout-static-plumbing 120 "$py" "${static_plumbing[@]}"
  NOTE="plumbing only, tiny model on CPU" timed decode-overhead 120 \
    "$py" benchmarks/bench_decode_overhead.py --model tiny --rows 4 --tokens 16
fi

# -- 4/5. end-to-end train, GPU then CPU ------------------------------------------------------------------
train() {  # train NAME LIMIT DEVICE EXTRA_SET...
  local name="$1" limit="$2" device="$3"; shift 3
  local sets=(--set "model.policy.device=$device")
  for s in "$@"; do sets+=(--set "$s"); done
  local hide=()
  [ "$device" = "cpu" ] && hide=(env CUDA_VISIBLE_DEVICES=)  # as on a machine without a GPU
  NOTE="$device" timed "$name" "$limit" "${hide[@]}" "$py" -m krill --preset tiny --env webshop "${sets[@]}" \
    train --out "$work/$name"
}
if [ "$cuda" = "1" ]; then train train-gpu 150 cuda; else skip train-gpu "needs CUDA"; fi
train train-cpu 150 cpu
if [ "$real" -eq 0 ]; then
  skip train-real "not asked for (--real-train)"
elif [ "$cuda" = "1" ]; then
  train train-real-gpu 150 cuda model.policy.model=random:smollm2-135m
  train train-real-cpu 240 cpu model.policy.model=random:smollm2-135m
else
  skip train-real-gpu "needs CUDA"
  skip train-real-cpu "runs beside train-real-gpu only (a 135M-shape train on CPU takes minutes)"
fi

# -- 6. the gpu-small estimate ------------------------------------------------------------------------------
if [ "$estimate" -eq 0 ]; then
  skip estimate "not asked for (--estimate)"
elif [ "$cuda" = "1" ]; then
  NOTE="random:qwen2.5-0.5b, WebShop, growing vs static cache" timed estimate 540 \
    "$py" benchmarks/gpu_small_estimate.py --out "$out/estimate" --episodes 16
else
  skip estimate "needs CUDA"
fi

finish
