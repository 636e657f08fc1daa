#!/usr/bin/env bash
# Download, on a CPU machine with network, the wheels benchmarks/gpu_check.sh needs on a GPU machine
# that has none: CPython 3.12, manylinux x86-64, no dependencies resolved (each one is listed here).
#
#   bash benchmarks/gpu_wheels.sh            # into .whl/ (git-ignored); carry that folder to the GPU box
#   bash benchmarks/gpu_wheels.sh DIR
#
# The GPU image already has torch, transformers, peft, accelerate, sentence-transformers, numpy,
# scipy, pyyaml, rich, httpx, safetensors, tokenizers, matplotlib, tensorboard and pytest. What krill
# imports on the check's path (tiny/random models, the offline WebShop env, the offline teacher, the
# hash embedder) and the image lacks is below, pinned to the versions krill's CI tested; typer and
# click are carried too, so the CLI runs on the version it was written for. About 3 MiB in all.
# (The embedded SmolLM2 and MiniLM packages are ~90 MiB each, over the 60 MiB carry budget: the
# check uses random weights of real shapes and the hash embedder instead.)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
dest="${1:-.whl}"
WHEELS=(
  pydantic==2.14.4
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0
  tenacity==9.2.1
  bm25s==0.3.16
  sniffio==1.3.1
  typer==0.29.2
  click==8.5.1
)
python="${PYTHON:-python3}"
mkdir -p "$dest"
rm -f "$dest"/*.whl  # one version of each: two would stop the install on the GPU machine
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$dest" "${WHEELS[@]}"
ls -l "$dest"
du -sh "$dest"
