"""Kill -9 at ≥20 points of `collect`, `distill`, `sft`, `rl` and `train`, then re-run the same command.

Each command runs as a real `python -m krill` process in its own session; the kill is SIGKILL to the
whole process group (what a preemption or the OOM killer does). Kill points are deterministic and
spread: after the output has grown to k lines, after a checkpoint or phase is recorded, or at a
fixed delay. After the re-run we check: exit 0; the work finished before the kill is still there and
is not redone; the final outputs equal an uninterrupted run with the same seed (fields that
legitimately differ are listed in docs/reliability.md); every .json/.jsonl under the output parses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from fault_helpers import bank_without_timestamps, check_bank, teacher_answer, unparseable_files
from safetensors.torch import load_file

from krill.testing.openai_server import FakeOpenAIServer

KRILL = [sys.executable, "-m", "krill"]
EPISODES = 12
SECRET = "sk-faults-SECRET-4242424242"  # in every run's environment; no file may ever contain it


# -- running and killing ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One workspace per module: a shared KRILL_CACHE, so the ALFWorld games are generated once."""
    root = tmp_path_factory.mktemp("kill")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRILL_")}
    env.update(KRILL_PRESET="tiny", KRILL_EMBEDDER="hash", KRILL_CACHE=str(root / "cache"),
               KRILL_RETRY_INITIAL="0.01", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", COLUMNS="200", PYTHONWARNINGS="ignore",
               OPENAI_API_KEY=SECRET)  # fmt: skip
    return SimpleNamespace(root=root, env=env, n=0)


def krill(ws, *args: str) -> str:
    """Run krill to completion; its output (stdout + stderr)."""
    r = subprocess.run([*KRILL, *args], env=ws.env, cwd=ws.root, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"krill {' '.join(args)} exited {r.returncode}:\n{out[-3000:]}"
    return out


def kill_when(
    ws, args: list[str], ready: Callable[[], bool], faults, timeout: float = 300, strict: bool = True
) -> bool:
    """Start krill, SIGKILL its process group the moment `ready()` holds; True if the kill landed
    mid-run. `strict`: a run that ends before its kill point fails the test."""
    ws.n += 1
    log = ws.root / f"killed-{ws.n}.log"
    with open(log, "wb") as fh:
        p = subprocess.Popen([*KRILL, *args], env=ws.env, cwd=ws.root, stdout=fh, stderr=subprocess.STDOUT,
                             start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while not ready():
            if p.poll() == 0 and not strict:
                return False
            if p.poll() is not None or time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL) if p.poll() is None else None
                p.wait()
                pytest.fail(f"kill point not reached (rc {p.returncode}):\n{log.read_text()[-2000:]}")
            time.sleep(0.005)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    if p.returncode == 0 and not strict:
        return False
    assert p.returncode == -signal.SIGKILL, f"finished before the kill:\n{log.read_text()[-2000:]}"
    faults.inject("kill -9")
    return True


def lines(path: Path) -> int:
    """Complete lines in a JSONL file (0 if absent)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def complete_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines() if x.strip()]


def latest_step(run: Path) -> int:
    try:
        return json.loads((run / "checkpoints" / "latest.json").read_text())["step"]
    except (FileNotFoundError, ValueError):
        return 0


def assert_all_parse(root: Path, faults) -> None:
    bad = unparseable_files(root)
    for b in bad:
        faults.lost(b)
    assert not bad, bad


def by_episode(rows: list[dict]) -> dict[int, dict]:
    """Trajectories by episode index, without `id` (a fresh uuid4 per episode, by design)."""
    return {r["metadata"]["episode_index"]: {k: v for k, v in r.items() if k != "id"} for r in rows}


# -- uninterrupted references (run once per module) ------------------------------------------------
@pytest.fixture(scope="module")
def ref(ws):
    r = ws.root / "ref"
    krill(ws, "collect", "--episodes", str(EPISODES), "--out", str(r / "collect.jsonl"), "--resume")
    krill(ws, "distill", "-t", str(r / "collect.jsonl"), "-o", str(r / "bank.json"))
    return SimpleNamespace(dir=r, collect=r / "collect.jsonl", bank=r / "bank.json")


# -- collect -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("suffix", "kill_at"), [(".jsonl", (2, 5, 8, 11)), (".json", (3, 7, 10))])
def test_collect_survives_kills_and_reuses_finished_episodes(ws, ref, faults, suffix, kill_at):
    out = ws.root / f"collect{suffix}"
    log = out.with_name(out.name + ".partial.jsonl") if suffix == ".json" else out
    args = ["collect", "--episodes", str(EPISODES), "--out", str(out), "--resume"]
    kept: list[dict] = []
    for k in kill_at:
        kill_when(ws, args, lambda k=k: lines(log) >= k, faults)
        rows = complete_rows(log)
        assert rows[: len(kept)] == kept, "episodes finished before an earlier kill were rewritten"
        kept = rows
    text = krill(ws, *args)
    n = len(kept)
    assert f"wrote {EPISODES} trajectories ({EPISODES - n} new, {n} kept from before)" in text
    final = json.loads(out.read_text()) if suffix == ".json" else complete_rows(out)
    assert not log.exists() or suffix == ".jsonl"
    assert len(final) == EPISODES and {r["id"] for r in kept} <= {r["id"] for r in final}
    assert by_episode(final) == by_episode(complete_rows(ref.collect))
    assert_all_parse(out, faults)


# -- distill -----------------------------------------------------------------------------------------
def test_distill_analytic_killed_early_leaves_nothing_half_written(ws, ref, faults):
    """The analytic teacher needs well under a second: the kill lands at start-up (when the machine
    is fast enough to finish first, the run is checked all the same but not counted as a kill)."""
    out = ws.root / "distill-analytic" / "bank.json"
    out.parent.mkdir()
    args = ["distill", "-t", str(ref.collect), "-o", str(out)]
    t0 = time.monotonic()
    kill_when(ws, args, lambda: time.monotonic() - t0 >= 0.3, faults, strict=False)
    assert not out.exists() or json.loads(out.read_text())  # absent or whole, never torn
    krill(ws, *args)
    assert bank_without_timestamps(check_bank(out)) == bank_without_timestamps(check_bank(ref.bank))
    assert_all_parse(out.parent, faults)


def test_distill_llm_teacher_killed_6_times_reuses_cached_answers(ws, ref, faults):
    sets = ["--set", "model.teacher.backend=llm", "--set", "model.teacher.model=fake",
            "--set", "distill.trajectories_per_call=1", "--set", "distill.concurrency=1"]  # fmt: skip
    with FakeOpenAIServer(teacher_answer, delay=0.05) as srv:
        sets += ["--set", f"model.teacher.api_base={srv.base_url}"]
        want = ws.root / "distill-llm-ref" / "bank.json"
        krill(ws, *sets, "distill", "-t", str(ref.collect), "-o", str(want))
        prompts = srv.stats["answered"]
        assert prompts == EPISODES  # one prompt per trajectory
        out = ws.root / "distill-llm" / "bank.json"
        cache = Path(f"{out}.work") / "teacher_cache.jsonl"
        args = [*sets, "distill", "-t", str(ref.collect), "-o", str(out)]
        before = srv.stats["answered"]
        cached: list[dict] = []
        for k in (1, 3, 5, 7, 9, 11):
            kill_when(ws, args, lambda k=k: lines(cache) >= k, faults)
            rows = complete_rows(cache)
            assert rows[: len(cached)] == cached, "cached teacher answers were rewritten"
            cached = rows
        text = krill(ws, *args)
        asked = srv.stats["answered"] - before
        assert {c["auth"] for c in srv.calls} == {f"Bearer {SECRET}"}  # the key was really used
    assert f"{prompts - len(cached)} ({len(cached)} from cache)" in text.replace("\n", " ")
    # every answer is asked once, plus at most the one in flight at each of the 6 kills
    assert prompts <= asked <= prompts + 6
    assert len({r["key"] for r in complete_rows(cache)}) == lines(cache) == prompts
    assert bank_without_timestamps(check_bank(out)) == bank_without_timestamps(check_bank(want))
    assert_all_parse(out.parent, faults)


# -- sft -----------------------------------------------------------------------------------------------
def _weights(path: Path) -> dict:
    return load_file(str(path))


def test_sft_killed_twice_resumes_from_the_last_checkpoint(ws, ref, faults):
    def args(out: Path) -> list[str]:
        return ["--set", "sft.checkpoint_every=1", "sft", "--skill-bank", str(ref.bank),
                "--demos", str(ref.collect), "--out", str(out), "--resume"]  # fmt: skip

    want = ws.root / "sft-ref"
    krill(ws, *args(want))
    out = ws.root / "sft"
    kill_when(ws, args(out), lambda: latest_step(out) >= 1, faults)
    kill_when(ws, args(out), lambda: latest_step(out) >= 3, faults)  # the re-run is killed too
    step = latest_step(out)
    krill(ws, *args(out))
    summary = json.loads((out / "sft_summary.json").read_text())
    assert summary["resumed_from_step"] == step >= 3
    ref_rows, rows = complete_rows(want / "metrics.jsonl"), complete_rows(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows] == list(range(1, len(ref_rows) + 1))
    assert rows == ref_rows  # same losses, step for step
    ref_summary = json.loads((want / "sft_summary.json").read_text())
    drop = ("wall_s", "resumed_from_step")
    assert {k: v for k, v in summary.items() if k not in drop} == {
        k: v for k, v in ref_summary.items() if k not in drop
    }  # tokens, losses and step counts cover the whole run, not just the part after the resume
    a, b = _weights(want / "adapter_model.safetensors"), _weights(out / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert_all_parse(out, faults)


# -- rl ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("context", ["window", "conversation"])
def test_rl_killed_before_and_after_its_first_checkpoint(ws, ref, faults, context):
    def args(out: Path) -> list[str]:
        return ["--set", f"agent.context={context}", "rl", "--skill-bank", str(ref.bank), "--out", str(out),
                "--resume", "--iterations", "2"]  # fmt: skip

    want = ws.root / f"rl-ref-{context}"
    krill(ws, *args(want))
    out = ws.root / f"rl-{context}"
    kill_when(ws, args(out), lambda: (out / "config.yaml").exists(), faults)  # set up, no checkpoint yet
    assert latest_step(out) == 0
    kill_when(ws, args(out), lambda: latest_step(out) >= 1, faults)
    first = complete_rows(out / "metrics.jsonl")[0]
    krill(ws, *args(out))
    rows = complete_rows(out / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2]
    assert rows[0] == first  # iteration 1 kept as logged before the kill (its wall times too): not re-run

    def no_times(r: dict) -> dict:
        return {k: v for k, v in r.items() if not k.startswith("time/")}

    assert [no_times(r) for r in rows] == [no_times(r) for r in complete_rows(want / "metrics.jsonl")]
    a = _weights(want / "adapter" / "adapter_model.safetensors")
    b = _weights(out / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert bank_without_timestamps(check_bank(out / "bank.json")) == bank_without_timestamps(
        check_bank(want / "bank.json")
    )
    assert_all_parse(out, faults)


# -- train ---------------------------------------------------------------------------------------------
TRAIN_SETS = ["--set", "train.expert_episodes=6", "--set", "train.policy_episodes=2",
              "--set", "train.eval_episodes=2", "--set", "rl.iterations=2",
              "--set", "evolution.validation_episodes=2"]  # fmt: skip


PHASES = ["collect", "distill", "eval_before", "sft", "rl", "eval_after"]


def _done(run: Path) -> set[str]:
    try:
        return set(json.loads((run / "state.json").read_text())["done"])
    except (FileNotFoundError, ValueError, KeyError):
        return set()


def test_train_killed_in_three_phases_skips_completed_ones(ws, faults):
    """Kill points: mid-collect (after 3 expert episodes), mid eval_before (distill done) and mid-RL
    (after its first checkpoint). Each re-run skips the phases already complete; the outputs equal
    an uninterrupted run's."""
    run = ws.root / "train"
    args = ["train", "--out", str(run), *TRAIN_SETS]
    expert = run / "trajectories" / "expert.jsonl"
    kill_when(ws, args, lambda: lines(expert) >= 3, faults)
    episodes = complete_rows(expert)
    kill_when(ws, args, lambda: "distill" in _done(run), faults)
    assert complete_rows(expert)[: len(episodes)] == episodes
    bank0 = (run / "banks" / "cycle_0.json").read_bytes()
    kill_when(ws, args, lambda: latest_step(run / "rl") >= 1, faults)
    assert {"collect", "distill", "eval_before", "sft"} <= _done(run)
    rl_first = complete_rows(run / "rl" / "metrics.jsonl")[0]
    text = krill(ws, *args)
    for phase in ("collect", "distill", "eval_before", "sft"):
        assert f"✓ {phase}: already complete, skipped" in text
    assert _done(run) == set(PHASES)
    assert (run / "banks" / "cycle_0.json").read_bytes() == bank0
    assert complete_rows(run / "rl" / "metrics.jsonl")[0] == rl_first  # RL resumed at iteration 2
    phases = [r["phase"] for r in complete_rows(run / "metrics.jsonl")]
    # every phase logged once, in order, even when a kill fell between logging a phase and marking it
    assert phases == list(PHASES)
    check_bank(json.loads((run / "state.json").read_text())["done"]["rl"]["bank"])
    assert_all_parse(run, faults)
    ref = ws.root / "train-ref"  # the same run, never interrupted
    krill(ws, "train", "--out", str(ref), *TRAIN_SETS)
    for rel in ("trajectories/expert.jsonl", "trajectories/policy.jsonl"):
        assert by_episode(complete_rows(run / rel)) == by_episode(complete_rows(ref / rel)), rel
    for rel in COMPARED:
        assert _run_view(run, rel) == _run_view(ref, rel), rel


# what a resumed train run must reproduce
COMPARED = ("metrics.jsonl", "banks/cycle_0.json", "sft/metrics.jsonl", "rl/metrics.jsonl", "rl/evolution.jsonl",
            "rl/bank.json", "eval/before.json", "eval/after.json")  # fmt: skip
VOLATILE = ("added_at", "wall_time_s", "cpu_time_s", "wall_s")


def _run_view(run: Path, rel: str):
    """A train output with the run's own path, its trajectories' random ids (→ file#episode) and
    wall-clock fields taken out, so two runs of the same seed can be compared."""
    text = (run / rel).read_text(encoding="utf-8").replace(str(run), "RUN")
    for f in (run / "trajectories").glob("*.jsonl"):
        for r in complete_rows(f):
            text = text.replace(r["id"], f"{f.stem}#{r['metadata']['episode_index']}")
    data = json.loads(text) if rel.endswith(".json") else [json.loads(x) for x in text.splitlines() if x]

    def drop(x):
        if isinstance(x, dict):
            return {k: drop(v) for k, v in x.items() if k not in VOLATILE and not k.startswith("time/")}
        return [drop(v) for v in x] if isinstance(x, list) else x

    return drop(data)


def test_no_file_a_run_writes_holds_the_api_key(ws, faults):
    """Grep everything the runs above wrote (configs, logs, metrics, checkpoints, banks, caches) and
    the HTML report of the train run for the API key that was in their environment."""
    run = ws.root / "train"
    if not (run / "state.json").exists():  # run alone (-k): make the train run the kill test makes
        krill(ws, "train", "--out", str(run), *TRAIN_SETS)
    krill(ws, "report", str(run))
    files = [p for p in ws.root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and any(p.suffix == ".safetensors" for p in files)
    leaks = [str(p) for p in files if SECRET.encode() in p.read_bytes()]
    for leak in leaks:
        faults.lost(f"API key written to {leak}")
    assert not leaks
