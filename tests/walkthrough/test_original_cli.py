"""The original krill's flags, fast: `--output` everywhere, CPU-sized defaults said aloud, config errors."""

from __future__ import annotations

import json
import re

import pytest
import torch

from krill.cli.sft import demo_count_note
from krill.config import load_config

ON_CPU = not torch.cuda.is_available()


@pytest.fixture
def cli(cli, monkeypatch, tmp_path):
    """The suite's in-process `krill ARGS` (tests/conftest.py), run in an empty directory, with the
    stderr line wraps undone: (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KRILL_PRESET", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str):
        code, out, err = cli(*args)
        return code, out, " ".join(err.split())

    return run


@pytest.mark.parametrize(
    "verb",
    [
        ["collect", "--episodes", "1", "--env", "nowhere"],
        ["distill", "--trajectories", "missing.json"],
        ["sft", "--preset", "tiny", "--skill-bank", "missing.json"],
        ["rl", "--preset", "tiny", "--skill-bank", "missing.json"],
        ["convert", "eto", "--input", "missing.json"],
    ],
)
def test_output_is_accepted_as_an_alias_of_out(cli, verb):
    code, _, err = cli(*verb, "--output", "x/out.json")
    assert code == 2 and "error: " in err and "No such option" not in err, err


def test_unknown_key_in_an_original_config_is_named(cli, tmp_path):
    (tmp_path / "config.demo.json").write_text(json.dumps({"rl": {"kl_coeff": 0.01, "warmup_steps": 3}}))
    code, _, err = cli("--config", "config.demo.json", "distill")
    assert code == 2
    assert err.startswith("error: config.demo.json: rl.warmup_steps: unknown key in original krill config")


@pytest.mark.skipif(not ON_CPU, reason="the CPU-sized default applies only without a GPU")
def test_verbatim_sft_on_cpu_uses_quick_sizes_and_says_so(cli):
    for verb in ("sft", "rl"):  # a missing input fails first, with how to make it, and nothing else said
        code, _, err = cli(verb, "--skill-bank", "data/skill_bank.json")
        assert code == 2 and err == (
            "error: data/skill_bank.json: file not found (run `krill distill` to create it, pass a bank path, "
            "or try `krill inspect --example`)"
        )  # (this fixture joins stderr's words with single spaces)
    from krill.data import example_bank_path

    code, _, err = cli("rl", "--skill-bank", str(example_bank_path()), "--init", "missing-adapter")
    assert "no GPU found: using the `quick` preset's sizes" in err and code == 2
    assert err.strip().endswith("error: missing-adapter: --init folder not found")


def test_the_demo_count_says_where_it_comes_from():
    cfg = load_config(preset="quick")
    assert demo_count_note(cfg, None) == (
        f"demo steps: sft.num_examples = {cfg.sft.num_examples} (preset: quick, config file: none; "
        "the original default is 7500; --num-examples N to change)"
    )
    assert demo_count_note(cfg, 7500) == "demo steps: 7500 (--num-examples)"
    assert "(preset: quick, config file: my.json; the original" in demo_count_note(cfg, None, "my.json")


@pytest.mark.skipif(not ON_CPU, reason="the CPU-sized default applies only without a GPU")
def test_a_config_file_is_taken_as_it_is_on_cpu(cli, tmp_path):
    (tmp_path / "config.demo.json").write_text(json.dumps({"sft": {"epochs": 1}, "rl": {"kl_coeff": 0.01}}))
    code, _, err = cli("--config", "config.demo.json", "rl", "--skill-bank", "missing.json")
    assert code == 2 and "no GPU found" not in err


def test_global_flags_after_the_verb_as_in_the_demo_run(cli, tmp_path, monkeypatch):
    """The original's demo run types `distill ... --output B --config config.demo.json` (clap global flags)."""
    from krill.data import example_trajectories_path

    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    (tmp_path / "bad.json").write_text(json.dumps({"evolution": {"max_analysis_deep": 4, "depth": 2}}))
    code, _, err = cli("distill", "--trajectories", "missing.json", "--config", "bad.json")
    assert code == 2 and err.startswith(
        "error: bad.json: evolution.depth: unknown key in original krill config"
    )
    demo = {"skill_retrieval": {"top_k": 6, "similarity_threshold": 0.4}, "rl": {"kl_coeff": 0.01}}
    (tmp_path / "config.demo.json").write_text(json.dumps(demo))
    trajs = str(example_trajectories_path())
    code, out, _ = cli("distill", "--trajectories", trajs, "--output", "data/demo_skill_bank.json",
                       "--config", "config.demo.json", "--env", "alfworld", "--mock")  # fmt: skip
    assert code == 0 and "to data/demo_skill_bank.json" in out
    code, out, _ = cli("inspect", "data/demo_skill_bank.json", "--mock", "--config", "config.demo.json")
    assert code == 0 and "Total skills: " in out and re.search(r"^\[[0-9a-f]{8}\] ", out, re.M)
    code, out, _ = cli("config", "show", "--config", "config.demo.json")
    assert "#   skill_retrieval.similarity_threshold -> skill_retrieval.threshold = 0.4" in out


def test_convert_eto_defaults_to_the_original_scripts_paths(cli, tmp_path):
    code, _, err = cli("convert", "eto", "--max", "100")
    assert code == 2 and err.startswith("error: data/alfworld_raw.json: ")
    raw = [{"id": "pick_and_place_simple-Book-None-Shelf-1", "conversations": [
        {"from": "human", "value": "You are in the middle of a room.\nYour task is to: put a book in shelf."},
        {"from": "gpt", "value": "Thought: find it.\nAction: go to shelf 1"},
        {"from": "human", "value": "Observation: On the shelf 1, you see a book 1."}]}]  # fmt: skip
    (tmp_path / "data").mkdir()
    (tmp_path / "data/alfworld_raw.json").write_text(json.dumps(raw))
    code, out, _ = cli("convert", "eto")
    assert code == 0 and "Converted 1 trajectories:\n  Pick: 1\n  Total steps: 1\n" in out
    assert (
        json.loads((tmp_path / "data/alfworld_trajectories.json").read_text())[0]["task_category"] == "Pick"
    )
    code, out, _ = cli("convert", "eto", "--out", "t.jsonl")
    assert code == 0 and (tmp_path / "t.jsonl").exists()
