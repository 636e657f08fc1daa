"""One drift rule for every resumable verb: a resume whose settings differ from the ones the output was
made with is refused (one line naming the key and both values) before it writes anything; operational
settings may change; a damaged state.json or one pointing outside the run is an error, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from krill.agent.collect import CollectOptions, collect
from krill.config import load_config
from krill.errors import KrillError
from krill.evaluate.eval import evaluate
from krill.io import write_json
from krill.runrecord import record_config, record_path
from krill.schema import SkillBank
from krill.train.ablate import run_ablation
from krill.train.pipeline import run_pipeline
from krill.train.rl import run_rl
from krill.train.sft import run_sft


def _cfgs(tmp_path, *changed):
    base = ["model.policy.device=cpu", f"cache_dir={tmp_path / 'cache'}"]
    return load_config(preset="tiny", overrides=base), load_config(preset="tiny", overrides=[*base, *changed])


def _refused(err, key: str, old, new) -> None:
    msg = str(err.value)
    assert err.value.where == key and f"made with {old!r}, not {new!r}" in msg and "\n" not in msg


def test_the_record_refuses_a_changed_setting_and_allows_operational_ones(tmp_path):
    a, b = _cfgs(tmp_path, "eval.split=valid_seen")
    run = tmp_path / "run"
    record_config(a, run)
    with pytest.raises(KrillError) as err:
        record_config(b, run)
    _refused(err, "eval.split", "valid_unseen", "valid_seen")
    faster = a.override({"model.policy.batch_size": 16, "env.workers": 2, "rl.micro_batch_tokens": 4096})
    record_config(faster, run)  # how fast, not what: allowed
    record_config(b, run, check=False)  # a run started over (no resume) replaces the record
    assert "valid_seen" in record_path(run).read_text()


def test_a_key_the_record_lacks_counts_as_unchanged_at_its_default(tmp_path):
    a, _ = _cfgs(tmp_path)
    run = tmp_path / "run"
    path = record_config(a, run)
    path.write_text(path.read_text().replace("  guidance: none\n", ""))  # written by an older krill
    record_config(a, run)
    with pytest.raises(KrillError) as err:
        record_config(a.override({"rl.guidance": "mixed"}), run)
    _refused(err, "rl.guidance", "none", "mixed")


def test_a_damaged_record_is_one_line(tmp_path):
    a, _ = _cfgs(tmp_path)
    run = tmp_path / "run"
    record_path(run).parent.mkdir(parents=True)
    record_path(run).write_text("{not: [yaml")
    with pytest.raises(KrillError, match="damaged"):
        record_config(a, run)


@pytest.mark.parametrize("verb", ["train", "ablate", "sft", "rl", "collect", "eval"])
def test_every_resumable_verb_refuses_a_changed_config_before_writing(tmp_path, monkeypatch, verb):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    a, b = _cfgs(tmp_path, "seed=7" if verb != "eval" else "eval.seed=7")
    out = tmp_path / ("out.jsonl" if verb == "collect" else "out.json" if verb == "eval" else "out")
    record_config(a, out)

    def files() -> list[str]:
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                      if "cache" not in p.parts and not p.name.endswith(".lock"))  # fmt: skip

    before = files()
    with pytest.raises(KrillError) as err:
        if verb == "train":
            run_pipeline(b, out)
        elif verb == "ablate":
            run_ablation(b, out, variants=["base"])
        elif verb == "sft":
            run_sft(b, SkillBank(), out, resume=True)
        elif verb == "rl":
            run_rl(b, SkillBank(), out, resume=True)
        elif verb == "collect":
            collect(b, CollectOptions(episodes=2, policy="expert", out=str(out), resume=True, seed=0))
        else:
            evaluate(b, policy="expert", bank=None, out=out, episodes=2)
    key = "eval.seed" if verb == "eval" else "seed"
    _refused(err, key, 0, 7)
    assert files() == before  # nothing written but the lock file


def test_train_resume_with_another_env_is_a_one_line_cli_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRILL_")}
    env.update(KRILL_CACHE=str(tmp_path / "cache"), KRILL_EMBEDDER="hash", COLUMNS="200")
    a, _ = _cfgs(tmp_path)
    record_config(a, tmp_path / "run")
    r = subprocess.run([sys.executable, "-m", "krill", "--preset", "tiny", "--set", "model.policy.device=cpu",
                        "--set", f"cache_dir={tmp_path / 'cache'}", "--env", "webshop", "train", "--out", "run"],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]  # after the tiny notice
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "env.name" in lines[0] and "'alfworld', not 'webshop'" in lines[0]


@pytest.mark.parametrize("state", [{"done": [1, 2]}, {"done": {"collect": 5}}, [1], {"done": "x"}])
def test_a_damaged_state_json_is_one_line(tmp_path, state):
    a, _ = _cfgs(tmp_path)
    write_json(tmp_path / "run" / "state.json", state)
    with pytest.raises(KrillError, match="damaged") as err:
        run_pipeline(a, tmp_path / "run")
    assert err.value.path == str(tmp_path / "run" / "state.json")


def test_a_state_json_pointing_outside_the_run_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, _ = _cfgs(tmp_path)
    record_config(a, Path("run"))
    done = {k: {"wall_time_s": 1.0} for k in ("collect", "eval_before", "sft")}
    done["distill"] = {"bank": "/etc/passwd"}
    write_json(Path("run") / "state.json", {"done": done})
    with pytest.raises(KrillError) as err:
        run_pipeline(a, Path("run"))
    assert err.value.where == "done.distill.bank" and "not a file of this run" in str(err.value)


def test_every_changed_key_is_named_in_the_one_line(tmp_path):
    a, b = _cfgs(tmp_path, "eval.split=valid_seen", "seed=7", "rl.guidance=prefix")
    record_config(a, tmp_path / "run")
    with pytest.raises(KrillError) as err:
        record_config(b, tmp_path / "run")
    msg = str(err.value)
    assert "(and 2 more: " in msg and "eval.split" in msg and "rl.guidance" in msg and "--force-config" in msg
    assert "\n" not in msg


def test_accepting_a_change_keeps_the_old_record_and_says_what_changed(tmp_path):
    from krill.io import read_jsonl
    from krill.runrecord import accepting_changed_config

    a, b = _cfgs(tmp_path, "eval.split=valid_seen")
    run = tmp_path / "run"
    record_config(a, run)
    write_json(run / "state.json", {"done": {"collect": {}, "distill": {}}})
    with accepting_changed_config():
        record_config(b, run)
    assert "valid_seen" in (run / "config.yaml").read_text()
    assert "valid_unseen" in (run / "config.superseded-1.yaml").read_text()
    (line,) = read_jsonl(run / "config.history.jsonl")
    assert line["changed"] == {"eval.split": ["valid_unseen", "valid_seen"]}
    assert line["previous_record"] == "config.superseded-1.yaml"
    assert line["phases_done_before"] == ["collect", "distill"]
    with pytest.raises(KrillError):  # outside the block the rule holds again
        record_config(a, run)


def test_force_config_on_the_cli_resumes_a_drifted_collect(tmp_path, monkeypatch, cli):
    """`krill collect --force-config` (a global flag, after the verb) continues a file made with another
    seed: the new settings are recorded and the old record kept beside the file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KRILL_CACHE", str(tmp_path / "cache"))
    args = ["--preset", "tiny", "collect", "--policy", "expert", "--episodes", "2", "--out", "t.jsonl"]
    assert cli(*args)[0] == 0
    code, _, err = cli(*args, "--resume", "--set", "seed=7")
    assert code == 2 and "--force-config" in err and "Traceback" not in err
    code, _, err = cli(*args, "--resume", "--set", "seed=7", "--force-config")
    assert code == 0, err
    assert "accepted changed settings" in err and "seed (0 → 7)" in err
    assert (tmp_path / ".t.jsonl.config.superseded-1.yaml").exists()
    assert "seed: 7" in (tmp_path / ".t.jsonl.config.yaml").read_text()
    code, _, err = cli(*args, "--resume", "--set", "seed=0")  # the flag holds for one invocation
    assert code == 2 and "made with 7, not 0" in err
