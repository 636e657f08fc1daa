"""One writer per run folder: a second krill process writing the same run gets a one-line error while
the first finishes untouched; a killed writer's lock is released by the OS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from krill.errors import KrillError
from krill.formats.trajectories import load_trajectories
from krill.runlock import lock_path, run_lock

HOLD = """
import sys, time
from krill.runlock import run_lock
with run_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(target: Path, verb: str = "train") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target), verb], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_first_and_a_killed_writer_frees_the_run(tmp_path, faults):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        with pytest.raises(KrillError) as err, run_lock(run, "ablate"):
            pass
        faults.inject("second-writer")
        msg = str(err.value)
        assert f"pid {proc.pid}, krill train" in msg and "another krill process" in msg and "\n" not in msg
        assert err.value.path == str(run)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    faults.inject("kill-9")
    with run_lock(run, "train"):  # the kernel released the dead process's lock: no stale lock
        assert lock_path(run).read_text().startswith(f"pid {os.getpid()}, krill train")


def test_single_file_outputs_lock_beside_the_file_and_the_lock_is_reentrant(tmp_path):
    out = tmp_path / "evals" / "after.json"
    assert lock_path(out) == tmp_path / "evals" / ".after.json.lock"
    assert lock_path(tmp_path / "runs" / "quick") == tmp_path / "runs" / "quick" / ".krill.lock"
    with run_lock(out, "eval"), run_lock(out, "eval"):  # a verb's phase inside its own verb's lock
        proc = subprocess.run([sys.executable, "-c", HOLD, str(out), "eval"], capture_output=True, text=True)
        assert proc.returncode != 0 and "another krill process" in proc.stderr
    with run_lock(out, "eval"):  # released when the outer block ended
        pass


@pytest.mark.slow
def test_two_concurrent_train_runs_into_one_folder(tmp_path, faults):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRILL_")}
    env.update(KRILL_PRESET="tiny", KRILL_EMBEDDER="hash", KRILL_CACHE=str(tmp_path / "cache"),
               OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", COLUMNS="200")  # fmt: skip
    cmd = [sys.executable, "-m", "krill", "train", "--out", "same"]
    first = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lock = tmp_path / "same" / ".krill.lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    second = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    faults.inject("second-writer")
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-2000:]
    assert second.returncode == 2
    lines = [
        line for line in second.stderr.splitlines() if line.startswith("error:")
    ]  # after the tiny notice
    assert len(lines) == 1 and "another krill process" in lines[0] and f"pid {first.pid}" in lines[0]
    trajs = load_trajectories(tmp_path / "same" / "trajectories" / "policy.jsonl")
    assert len(trajs) == 4  # train.policy_episodes of the tiny preset: nothing written twice


@pytest.mark.parametrize("verb", ["train", "ablate", "sft", "rl", "collect", "distill", "eval"])
def test_every_writing_verb_takes_the_lock_first(tmp_path, monkeypatch, verb):
    from krill.agent.collect import CollectOptions, collect
    from krill.config import load_config
    from krill.evaluate.eval import evaluate
    from krill.schema import SkillBank
    from krill.skills.distill import distill_file
    from krill.train.ablate import run_ablation
    from krill.train.pipeline import run_pipeline
    from krill.train.rl import run_rl
    from krill.train.sft import run_sft

    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    cfg = load_config(preset="tiny", overrides=["model.policy.device=cpu", f"cache_dir={tmp_path / 'cache'}"])
    out = tmp_path / {"collect": "t.jsonl", "distill": "bank.json", "eval": "r.json"}.get(verb, "run")
    calls = {
        "train": lambda: run_pipeline(cfg, out),
        "ablate": lambda: run_ablation(cfg, out),
        "sft": lambda: run_sft(cfg, SkillBank(), out),
        "rl": lambda: run_rl(cfg, SkillBank(), out),
        "collect": lambda: collect(cfg, CollectOptions(episodes=1, policy="expert", out=str(out))),
        "distill": lambda: distill_file(tmp_path / "missing.jsonl", out, cfg),
        "eval": lambda: evaluate(cfg, policy="expert", bank=None, out=out, episodes=1),
    }
    if verb == "distill":  # distill reads its input first; give it one so the lock is what stops it
        from krill.formats.trajectories import save_trajectories
        from krill.schema import Step, Trajectory

        save_trajectories(tmp_path / "missing.jsonl", [Trajectory(task_description="t", steps=[
            Step(observation="o", action="look")], task_category="Pick")])  # fmt: skip
    proc = _holder(out, "train")
    try:
        with pytest.raises(KrillError, match="another krill process"):
            calls[verb]()
    finally:
        proc.kill()
        proc.wait()
