"""Bad input corpus: ≥30 malformed files fed to every command that reads files.

Each must give exactly one line on stderr naming the file, exit code 2, no traceback, and no hang.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from krill.cli.main import main

GOOD_SKILL = {"id": "5d352009-0000-4000-8000-000000000001", "name": "Heat first", "principle": "Heat it.",
              "when_to_apply": "hot tasks", "category": {"TaskSpecific": "Heat"}, "embedding": None}  # fmt: skip
GOOD_BANK = {
    "general_skills": [],
    "task_specific_skills": {"Heat": [GOOD_SKILL]},
    "history": [],
    "current_cycle": 0,
}
GOOD_TRAJ = {"id": "t1", "task_description": "put a hot apple in fridge", "task_category": "Heat",
             "steps": [{"observation": "o", "action": "look", "reward": 0.0, "step_index": 0}],
             "total_reward": 0.0, "success": False, "metadata": {}}  # fmt: skip


def _skill(**kw):
    return {**GOOD_SKILL, **kw}


def _bank(**kw):
    return json.dumps({**GOOD_BANK, **kw})


def _deep(n: int) -> str:
    return "[" * n + "]" * n


BANKS: dict[str, bytes | str] = {
    "truncated": '{"general_skills": [',
    "empty": "",
    "not_json": "hello world",
    "null": "null",
    "top_level_array": "[1, 2, 3]",
    "general_is_string": _bank(general_skills="oops"),
    "missing_principle": _bank(
        general_skills=[{k: v for k, v in _skill(category="General").items() if k != "principle"}]
    ),
    "principle_int": _bank(general_skills=[_skill(category="General", principle=42)]),
    "empty_name": _bank(general_skills=[_skill(category="General", name="")]),
    "unknown_category_value": _bank(
        task_specific_skills={"Heat": [_skill(category={"TaskSpecific": "Juggle"})]}
    ),
    "unknown_category_key": _bank(task_specific_skills={"juggling": [_skill()]}),
    "nan_embedding": _bank(task_specific_skills={"Heat": [_skill(embedding=[0.1])]}).replace(
        "[0.1]", "[NaN]"
    ),
    "inf_embedding": _bank(task_specific_skills={"Heat": [_skill(embedding=[0.1])]}).replace(
        "[0.1]", "[Infinity]"
    ),
    "string_in_embedding": _bank(task_specific_skills={"Heat": [_skill(embedding=[0.1, "x"])]}),
    "mixed_dims": _bank(
        task_specific_skills={
            "Heat": [
                _skill(embedding=[0.1, 0.2]),
                _skill(id="5d352009-0000-4000-8000-000000000002", embedding=[0.1, 0.2, 0.3]),
            ]
        }
    ),
    "duplicate_ids": _bank(task_specific_skills={"Heat": [_skill(), _skill(name="other")]}),
    "latin1": _bank(general_skills=[_skill(category="General", name="café")]).encode("latin-1"),
    "utf16": _bank().encode("utf-16"),
    "binary_garbage": bytes(range(256)) * 4,
    "deep_nesting": '{"general_skills": ' + _deep(100_000) + "}",
    "giant_name": _bank(general_skills=[_skill(category="General", name="x" * 2_000_000)]),
    "cycle_string": _bank(current_cycle="seven"),
    "history_missing_id": _bank(history=[{"added_at": "2026-01-01T00:00:00Z"}]),
    "official_unknown_category": json.dumps(
        {
            "general_skills": [],
            "task_specific_skills": {
                "juggling": [{"skill_id": "j1", "title": "t", "principle": "p", "when_to_apply": "w"}]
            },
        }
    ),
    "official_missing_title": json.dumps(
        {
            "general_skills": [{"skill_id": "g1", "principle": "p", "when_to_apply": "w"}],
            "task_specific_skills": {},
        }
    ),  # fmt: skip
}

TRAJS: dict[str, bytes | str] = {
    "broken_line": json.dumps(GOOD_TRAJ) + "\n{not json\n" + json.dumps({**GOOD_TRAJ, "id": "t3"}) + "\n",
    "empty": "",
    "no_steps": json.dumps({**GOOD_TRAJ, "steps": []}) + "\n",
    "step_missing_action": json.dumps({**GOOD_TRAJ, "steps": [{"observation": "o"}]}) + "\n",
    "nan_reward": json.dumps(GOOD_TRAJ).replace('"total_reward": 0.0', '"total_reward": NaN') + "\n",
    "unknown_category": json.dumps({**GOOD_TRAJ, "task_category": "Juggle"}) + "\n",
    "success_wrong_type": json.dumps({**GOOD_TRAJ, "success": "maybe"}) + "\n",
    "truncated_array": "[" + json.dumps(GOOD_TRAJ) + ", {",
    "latin1": (json.dumps({**GOOD_TRAJ, "task_description": "café"}, ensure_ascii=False) + "\n").encode(
        "latin-1"
    ),
    "giant_observation": json.dumps(
        {**GOOD_TRAJ, "steps": [{"observation": "x" * 30_000_000, "action": "a"}]}
    )
    + "\n",
    "duplicate_ids": json.dumps(GOOD_TRAJ) + "\n" + json.dumps(GOOD_TRAJ) + "\n",
}

CONFIGS: dict[str, tuple[str, str]] = {
    "bad_yaml": ("cfg.yaml", "rl: [unclosed"),
    "unknown_key": ("cfg.yaml", "rl:\n  bogus_key: 3\n"),
    "wrong_type": ("cfg.toml", '[rl]\ngroup_size = "eight"\n'),
    "bad_toml": ("cfg.toml", "[rl\n"),
    "original_unknown_key": (
        "config.demo.json",
        json.dumps({"sft": {"learning_rate": 1e-4}, "rl": {"warp": 9}}),
    ),
}


def _write(tmp_path: Path, name: str, content: bytes | str, suffix: str) -> Path:
    p = tmp_path / f"{name}{suffix}"
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    return code, err


def assert_clean_error(code: int, err: str, path: Path) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, f"exit {code}, stderr: {err[:500]}"
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("error:"), err[:500]
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1
    assert path.name in lines[-1], f"message does not name the file: {lines[-1][:300]}"
    assert len(lines[-1]) < 600, "the one-line error should not dump the input"


def bank_commands(p: Path, good: Path, out: Path) -> list[list[str]]:
    return [
        ["inspect", str(p)],
        ["bank", "stats", str(p)],
        ["bank", "convert", str(p), str(out), "--to", "official"],
        ["bank", "diff", str(good), str(p)],
        ["retrieve", "--bank", str(p), "heat an apple"],
    ]


@pytest.mark.parametrize("name", sorted(BANKS))
def test_bad_bank(name, tmp_path, capsys, faults):
    p = _write(tmp_path, name, BANKS[name], ".json")
    good = _write(tmp_path, "good", _bank(), ".json")
    out = tmp_path / "out.json"
    for args in bank_commands(p, good, out):
        code, err = run_cli(args, capsys)
        assert_clean_error(code, err, p)
        assert not out.exists(), "nothing half-written"
        faults.inject("bad input file")


@pytest.mark.parametrize("name", sorted(TRAJS))
def test_bad_trajectories(name, tmp_path, capsys, faults, monkeypatch):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    p = _write(tmp_path, name, TRAJS[name], ".jsonl")
    good = _write(tmp_path, "good", _bank(), ".json")
    out = tmp_path / "bank_out.json"
    for args in (
        ["distill", "--trajectories", str(p), "--out", str(out)],
        ["bank", "compression", "--bank", str(good), "--trajectories", str(p)],
    ):
        code, err = run_cli(args, capsys)
        assert_clean_error(code, err, p)
        assert not out.exists()
        faults.inject("bad input file")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bad_config(name, tmp_path, capsys, faults):
    fname, content = CONFIGS[name]
    p = tmp_path / fname
    p.write_text(content)
    code, err = run_cli(["--config", str(p), "config", "show"], capsys)
    assert_clean_error(code, err, p)
    faults.inject("bad input file")


def test_bad_eto_and_eval_files(tmp_path, capsys, faults):
    eto = _write(tmp_path, "eto", '{"not": "a list"}', ".json")
    code, err = run_cli(["convert", "eto", str(eto), str(tmp_path / "o.jsonl")], capsys)
    assert_clean_error(code, err, eto)
    bank = _write(tmp_path, "bank", _bank(), ".json")
    code, err = run_cli(["eval", "--compare", str(bank), str(bank)], capsys)
    assert_clean_error(code, err, bank)
    faults.inject("bad input file", 2)


def test_corpus_is_big_enough():
    assert len(BANKS) + len(TRAJS) + len(CONFIGS) + 2 >= 30
