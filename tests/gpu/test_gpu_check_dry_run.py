"""benchmarks/gpu_check.sh --dry-run on a machine without CUDA: the steps that need none run, the rest
are named as skipped, and the figures land in --out (the script must be ready for the next GPU)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is for machines without CUDA")
def test_dry_run_runs_what_needs_no_cuda_and_names_the_rest(tmp_path):
    proc = _run("--dry-run", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    steps = {s["step"]: s for s in json.loads((tmp_path / "summary.json").read_text())["steps"]}
    assert steps["deps"]["status"] == "ok"
    assert steps["gpu-tests"]["status"] == "ok" and "skipped" in steps["gpu-tests"]["figure"]
    assert "passed" not in steps["gpu-tests"]["figure"]  # collected and skipped, none ran
    for name in ("rollout", "train-gpu"):
        assert steps[name]["status"] == "skipped" and "CUDA" in steps[name]["note"]
    assert steps["estimate"]["status"] == "skipped" and "--estimate" in steps["estimate"]["note"]
    for name in ("rollout-plumbing", "rollout-static-plumbing", "decode-overhead", "train-cpu"):
        assert steps[name]["status"] == "ok", steps[name]
    assert "tok/s batched" in steps["rollout-plumbing"]["figure"]
    table = (tmp_path / "summary.md").read_text()
    assert "| train-cpu | ok |" in table and "no GPU (dry run)" in table
    assert "krill train" in (tmp_path / "log.txt").read_text()


def test_without_cuda_a_real_run_refuses_with_a_clear_message(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = _run("--out", str(tmp_path))
    assert proc.returncode == 2
    assert "no CUDA GPU here" in proc.stderr and "--dry-run" in proc.stderr


def test_unknown_argument_is_a_one_line_error():
    proc = _run("--bogus")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gpu_check.sh: unknown argument --bogus (see --help)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is for machines without CUDA")
def test_decoder_plan_dry_run_leaves_its_figures(tmp_path):
    """--decoder: issue 34's steps in one call; here their CPU plumbing, the sweep's rates summarized."""
    proc = _run("--decoder", "--dry-run", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    steps = {s["step"]: s for s in json.loads((tmp_path / "summary.json").read_text())["steps"]}
    assert list(steps) == [
        "deps",
        "gpu-tests-static",
        "rollout-static-plumbing",
        "estimate",
        "sweep-plumbing",
    ]
    assert steps["estimate"]["status"] == "skipped" and "CUDA" in steps["estimate"]["note"]
    assert "static" in steps["rollout-static-plumbing"]["figure"]
    assert (
        "2 in flight" in steps["sweep-plumbing"]["figure"]
        and "4 in flight" in steps["sweep-plumbing"]["figure"]
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is for machines without CUDA")
def test_steps_past_the_budget_are_skipped_and_named(tmp_path):
    proc = _run("--decoder", "--dry-run", "--budget", "10", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    cut = [s for s in steps if s["step"] not in ("deps", "estimate")]
    assert cut and all(s["status"] == "skipped" and "out of --budget (10 s)" in s["note"] for s in cut)


def test_a_budget_that_is_not_seconds_is_a_one_line_error():
    proc = _run("--budget", "soon")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gpu_check.sh: --budget takes whole seconds, not 'soon'"


def test_the_estimate_takes_compile_time_out_of_the_steps(tmp_path):
    """The static decoder logs each shape's compile/capture; the estimate sums them (rich wraps lines)."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_small_estimate import warmup_in

    log = tmp_path / "eval.log"
    log.write_text("INFO  static decoder: 64 rows × 2048 columns, step 1 warmed in\n         61.20 s\n"
                   "INFO  static decoder: 64 rows × 2048 columns, step 2 warmed in 0.35 s\nEval: 3/16\n")  # fmt: skip
    assert warmup_in(log) == pytest.approx(61.55)
