"""`krill train` killed during RL resumes with the same command (issue 8): collect, distill, eval and
SFT are not redone, and RL continues from its last checkpoint instead of iteration 1."""

import os
import signal
import subprocess
import sys
import time

import pytest

from krill.io import read_json, read_jsonl

pytestmark = pytest.mark.slow


def _cmd(run):
    return [sys.executable, "-m", "krill", "--preset", "tiny", "train", "--out", str(run),
            "--set", "rl.iterations=3", "--set", "rl.checkpoint_every=1"]  # fmt: skip


def _env(tmp_path):
    env = dict(os.environ, KRILL_EMBEDDER="hash", KRILL_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    env.pop("KRILL_PRESET", None)
    return env


def _kill_after_first_rl_checkpoint(run, env):
    proc = subprocess.Popen(_cmd(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = run / "rl" / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 600
    while not pointer.exists():
        assert proc.poll() is None, "train ended before RL wrote a checkpoint"
        assert time.monotonic() < deadline, "no RL checkpoint within 10 minutes"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return read_json(pointer)["step"]


def test_train_killed_during_rl_resumes_from_checkpoint(tmp_path):
    run, env = tmp_path / "run", _env(tmp_path)
    killed_at = _kill_after_first_rl_checkpoint(run, env)
    assert set(read_json(run / "state.json")["done"]) == {"collect", "distill", "eval_before", "sft"}
    before = {
        p: p.stat().st_mtime_ns
        for p in [run / "banks" / "cycle_0.json", run / "sft" / "adapter_model.safetensors"]
    }

    again = subprocess.run(_cmd(run), env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    out = again.stdout + again.stderr
    for phase in ("collect", "distill", "eval_before", "sft"):
        assert f"{phase}: already complete, skipped" in out
    assert f"iteration {killed_at} of 3" in out  # "rl: resuming from ... (iteration K of 3)"
    assert {p: p.stat().st_mtime_ns for p in before} == before  # earlier outputs untouched
    assert [r["iteration"] for r in read_jsonl(run / "rl" / "metrics.jsonl")] == [1, 2, 3]
    assert set(read_json(run / "state.json")["done"]) >= {"rl", "eval_after"}
    assert "held-out success" in again.stdout
