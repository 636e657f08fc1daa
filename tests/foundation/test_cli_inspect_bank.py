"""`krill inspect` and `krill bank …` through the real CLI entry point; bad inputs exit 2 in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from foundation_data import rust_bank_dict

from krill.formats.banks import load_bank
from krill.schema import SkillBank


def test_inspect_prints_the_walkthrough_shape(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    d = rust_bank_dict()
    d["task_specific_skills"]["Heat"][0].update(
        id="5d352009-8c1e-4f5a-9b1b-3f0f2a1e9c11",
        name="Heat Management",
        principle="Safely handle hot objects and determine appropriate places for cooling or storage.",
        when_to_apply="When dealing with tasks that involve hot items that need to be cooled down or stored safely.",
    )
    p = tmp_path / "skill_bank.json"
    p.write_text(json.dumps(d))
    code, out, err = cli("inspect", str(p))
    assert code == 0, err
    assert (
        "[5d352009] Heat Management\n"
        "  Principle: Safely handle hot objects and determine\n"
        "             appropriate places for cooling or storage.\n"
        "  Apply when: When dealing with tasks that involve hot items\n"
        "              that need to be cooled down or stored safely.\n"
    ) in out
    assert out.index("Explore Systematically") < out.index("Use the Desklamp") < out.index("Heat Management")
    assert out.endswith("Total skills: 4\nGeneral: 2\nLook: 1\nHeat: 1\n")
    assert out.startswith(f"Skill bank: {p}\n")
    assert max(len(line) for line in out.splitlines()[1:]) <= 60  # all but the path line wrap


def test_inspect_official_bank_and_options(tmp_path, cli, rust_bank):
    official = tmp_path / "official.json"
    assert cli("bank", "convert", str(rust_bank), str(official), "--to", "official")[0] == 0
    code, out, _ = cli("inspect", str(official), "--summary")
    assert code == 0 and out == "Total skills: 4\nGeneral: 2\nLook: 1\nHeat: 1\n"
    code, out, _ = cli("inspect", str(official), "--category", "pick_heat_then_place_in_recep")
    assert (
        "Microwave Heating" in out
        and "Explore" not in out
        and out.endswith("Total skills: 1\nGeneral: 0\nHeat: 1\n")
    )
    code, out, _ = cli("inspect", str(official), "--search", "DESKLAMP", "--summary")
    assert out == "Total skills: 1\nGeneral: 0\nLook: 1\n"
    code, out, _ = cli("inspect", str(official), "--json")
    bank = SkillBank.model_validate(json.loads(out))  # validates against the model
    assert len(bank) == 4 and bank.current_cycle == 2


def test_inspect_example_and_default_path(tmp_path, cli, monkeypatch):
    code, out, _ = cli("inspect", "--example")
    assert code == 0
    counts = dict(line.split(": ") for line in out.splitlines()[-8:])
    assert set(counts) == {"Total skills", "General", "Pick", "PickTwo", "Look", "Clean", "Heat", "Cool"}
    assert int(counts["Total skills"]) == int(counts["General"]) + sum(
        int(counts[c]) for c in list(counts)[2:]
    )
    assert "Common mistakes" in out
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("inspect")
    assert code == 2 and "data/skill_bank.json: file not found" in err and "krill inspect --example" in err
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "skill_bank.json").write_text(json.dumps(rust_bank_dict()))
    code, out, _ = cli("inspect")
    assert code == 0 and "Total skills: 4" in out


def test_bank_merge_diff_stats_export(tmp_path, cli, rust_bank):
    from krill.data import example_bank_path

    merged = tmp_path / "merged.json"
    code, out, _ = cli("bank", "merge", str(rust_bank), str(example_bank_path()), "--out", str(merged))
    assert code == 0 and "added 16" in out
    m = load_bank(merged)
    assert len(m) == 20 and {h.skill_id for h in m.history} == {s.id for s in m.all_skills()}
    code, out, _ = cli("bank", "diff", str(rust_bank), str(merged), "--json")
    d = json.loads(out)
    assert len(d["added"]) == 16 and d["removed"] == [] and d["changed"] == []
    edited = rust_bank_dict()
    edited["general_skills"][0]["principle"] = "A new principle."
    del edited["task_specific_skills"]["Look"]
    p2 = tmp_path / "edited.json"
    p2.write_text(json.dumps(edited))
    code, out, _ = cli("bank", "diff", str(rust_bank), str(p2))
    assert "- [" in out and "Use the Desklamp" in out and "~ [" in out and "principle changed" in out
    assert out.strip().endswith("added 0, removed 1, changed 1")
    code, out, _ = cli("bank", "stats", str(rust_bank), "--json")
    s = json.loads(out)
    assert (s["total_skills"], s["general"], s["embedded"], s["embedding_dim"]) == (4, 2, 3, 3)
    code, out, _ = cli("bank", "export", str(rust_bank), str(tmp_path / "skills"), "--to", "agent-skills")
    md = (tmp_path / "skills" / "microwave-heating" / "SKILL.md").read_text()
    assert md.startswith("---\nname: microwave-heating\ndescription: When microwave heating applies.\n---\n")
    assert "Microwave Heating: do the thing that works." in md and "Task-specific: Heat" in md
    assert len(list((tmp_path / "skills").iterdir())) == 4


BAD_BANKS = {
    "missing.json": None,
    "not_json.json": '{"general_skills": [,]}',
    "schema.json": json.dumps(
        {**rust_bank_dict(), "general_skills": [{"id": "x", "name": "n", "when_to_apply": "w"}]}
    ),
    "category.json": json.dumps({**rust_bank_dict(), "task_specific_skills": {"Juggling": []}}),
    "latin1.json": b'{"general_skills": [], "task_specific_skills": {}, "history": [], "note": "caf\xe9"}',
    "nan.json": json.dumps(rust_bank_dict()).replace("[0.6, 0.8, 0.0]", "[NaN, 0.8, 0.0]"),
    "mixed.json": json.dumps(rust_bank_dict()).replace("[0.6, 0.8, 0.0]", "[0.6, 0.8]"),
}
EXPECT = {
    "missing.json": "file not found",
    "not_json.json": "line 1, column 21: invalid JSON",
    "schema.json": "general_skills[0].principle: Field required",
    "category.json": "task_specific_skills.Juggling: unknown category 'Juggling'; known: Pick, PickTwo",
    "latin1.json": "line 1: not valid UTF-8 text",
    "nan.json": "general_skills[0].embedding[0]: nan is not a finite number",
    "mixed.json": "embeddings of mixed dimension",
}


@pytest.mark.parametrize("name", sorted(BAD_BANKS))
@pytest.mark.parametrize("verb", [("inspect",), ("bank", "stats"), ("bank", "convert")])
def test_bad_bank_is_one_line_exit_2(tmp_path, cli, name, verb):
    p = tmp_path / name
    content = BAD_BANKS[name]
    if content is not None:
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out.json"
    args = [*verb, str(p)] + ([str(out), "--to", "official"] if verb[-1] == "convert" else [])
    code, stdout, err = cli(*args)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {p}: ") and "Traceback" not in err
    assert EXPECT[name] in err
    assert not out.exists()


def test_console_script_has_no_traceback_unless_debug(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"general_skills": [')
    env = {**os.environ, "COLUMNS": "80"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "krill.cli.main", *args], capture_output=True, text=True, env=env
        )

    r = run("inspect", str(p))
    assert r.returncode == 2 and r.stderr == f"error: {p}: line 1, column 21: invalid JSON: Expecting value\n"
    r = run("--debug", "inspect", str(p))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_bank_dedup_merges_exact_duplicates(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")  # deterministic offline embedder: same text, same vector
    d = rust_bank_dict()
    twin = {**d["general_skills"][0], "id": "00000000-0000-4000-8000-000000000001", "embedding": None}
    d["general_skills"].append(twin)
    for s in d["general_skills"] + d["task_specific_skills"]["Heat"]:
        s["embedding"] = None  # the fixture's toy 3-d vectors are not from this embedder
    p = tmp_path / "dups.json"
    p.write_text(json.dumps(d))
    out = tmp_path / "dedup.json"
    code, stdout, err = cli("bank", "dedup", str(p), "--out", str(out), "--threshold", "0.99")
    assert code == 0, err
    assert "merged 1" in stdout and len(load_bank(out)) == 4 and len(load_bank(p)) == 5


def test_bank_compression_runs_on_the_shipped_examples(cli, tmp_path):
    from krill.data import example_bank_path, example_trajectories_path

    code, out, err = cli(
        "bank",
        "compression",
        "--bank",
        str(example_bank_path()),
        "--trajectories",
        str(example_trajectories_path()),
        "--json",
    )
    assert code == 0, err
    assert isinstance(json.loads(out), dict) and json.loads(out)
    code, table, err = cli("bank", "compression", "--bank", str(example_bank_path()),
                           "--trajectories", str(example_trajectories_path()))  # fmt: skip
    assert code == 0, err
    assert not re.search(r"\d\.\d{6,}", table), table  # floats read as numbers, not 17 digits
    empty = tmp_path / "no_steps.jsonl"
    empty.write_text('{"id": "a", "task_description": "put a hot egg in diningtable.", "steps": []}\n')
    code, _, err = cli(
        "bank", "compression", "--bank", str(example_bank_path()), "--trajectories", str(empty)
    )
    assert code == 2 and err == f"error: {empty}: line 1: steps: trajectory has no steps\n"


def test_user_categories_from_config(tmp_path, cli):
    d = rust_bank_dict()
    d["task_specific_skills"] = {
        "lab_bench": [{**d["task_specific_skills"]["Heat"][0], "category": {"TaskSpecific": "lab_bench"}}]
    }
    bank = tmp_path / "custom.json"
    bank.write_text(json.dumps(d))
    code, _, err = cli("inspect", str(bank), "--summary")
    assert code == 2 and "unknown category 'lab_bench'" in err and "env.categories" in err
    cfg = tmp_path / "krill.yaml"
    cfg.write_text("env:\n  categories: [lab_bench]\n")
    code, out, err = cli("--config", str(cfg), "inspect", str(bank), "--summary")
    assert code == 0, err
    assert out.endswith("lab_bench: 1\n")


def test_config_explain_tells_what_a_key_does(capsys):
    from typer.testing import CliRunner

    from krill.cli.main import app

    out = CliRunner().invoke(app, ["config", "explain", "agent.context"])
    assert out.exit_code == 0 and out.stdout.startswith("agent.context = 'window'")
    assert "conversation: the episode is one chat" in out.stdout
    section = CliRunner().invoke(app, ["config", "explain", "rl"]).stdout
    assert "rl.kl_coef = 0.01" in section and "rl.group_size = 8" in section
    bad = subprocess.run([sys.executable, "-m", "krill.cli.main", "config", "explain", "agent.contxt"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr == "error: agent.contxt: no such config key\n"


def test_a_category_the_name_already_spells_is_shown_once(tmp_path, cli):
    from krill.schema import Skill, SkillBank

    named = [("Cool: search the places failures skipped", "Cool"), ("Break repetition loops (Look)", "Look"),
             ("Heat first", "Heat")]  # fmt: skip
    skills = [Skill(name=n, principle="p", when_to_apply="w", category=c) for n, c in named]
    assert [s.label for s in skills] == ["search the places failures skipped (Cool)", "Break repetition loops (Look)",
                                         "Heat first (Heat)"]  # fmt: skip
    assert (
        Skill(name="Cool:", principle="p", when_to_apply="w", category="Cool").bare_name == "Cool:"
    )  # nothing left
    a, b = SkillBank(), SkillBank()
    for s in skills:
        b.add(s)
    (tmp_path / "a.json").write_text(json.dumps(a.to_json_dict()))
    (tmp_path / "b.json").write_text(json.dumps(b.to_json_dict()))
    code, out, _ = cli("bank", "diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert code == 0 and "(Look) (Look)" not in out and "Cool: search" not in out
    assert "Break repetition loops (Look)" in out
