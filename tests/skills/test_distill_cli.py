"""`krill distill` end to end: default paths, summary table, bad inputs → one-line errors, nothing half-written."""

from __future__ import annotations

import pytest
from test_analytic_synth import synth_trajectories

from krill.cli.main import main
from krill.formats.banks import load_bank
from krill.formats.trajectories import save_trajectories


def run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture(autouse=True)
def _hash_embedder(monkeypatch):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")


def test_default_paths_and_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    save_trajectories(tmp_path / "data" / "trajectories.json", synth_trajectories(30, 30, seed=4))
    code, out, _ = run(["distill"], capsys)
    assert code == 0
    bank = load_bank(tmp_path / "data" / "skill_bank.json")
    assert len(bank) > 0 and bank.general_skills and bank.common_mistakes
    assert all(s.embedding is not None for s in bank.all_skills())
    for label in ("trajectories read", "30 successes, 30 failures", "merged near-duplicates", "general skills",
                  "teacher calls", "tokens", "common mistakes"):  # fmt: skip
        assert label in out
    code, out, _ = run(
        ["distill", "-t", "data/trajectories.json", "--output", "other.json", "--teacher", "analytic"], capsys
    )
    again = load_bank(tmp_path / "other.json")
    assert code == 0 and again.model_dump(exclude={"history"}) == bank.model_dump(exclude={"history"})
    assert [h.skill_id for h in again.history] == [h.skill_id for h in bank.history]  # only added_at differs


@pytest.mark.parametrize(
    "content,message",
    [
        ("", "empty file"),
        ('{"id": "a", "task_description": "put a pen in desk", "steps": []}\n', "trajectory has no steps"),
        (
            '{"id": "a", "task_description": "t", "steps": [{"observation": "o", "action": "a"}]}\n{broken\n',
            "line 2",
        ),
    ],
)
def test_bad_inputs_one_line_error_and_nothing_written(tmp_path, capsys, content, message):
    src = tmp_path / "t.jsonl"
    src.write_text(content)
    out = tmp_path / "bank.json"
    code, _, err = run(["distill", "--trajectories", str(src), "--out", str(out)], capsys)
    assert code == 2 and message in err and str(src) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_missing_default_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["distill"], capsys)
    assert code == 2 and "data/trajectories.json" in err and "not found" in err


def test_unknown_teacher(tmp_path, capsys):
    src = tmp_path / "t.jsonl"
    save_trajectories(src, synth_trajectories(2, 0))
    code, _, err = run(
        ["distill", "-t", str(src), "-o", str(tmp_path / "b.json"), "--teacher", "oracle"], capsys
    )
    assert code == 2 and "unknown teacher 'oracle'" in err
