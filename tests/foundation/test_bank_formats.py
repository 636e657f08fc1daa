"""Skill-bank formats: Rust krill round trips, official SkillRL import/export, detection, invariants."""

from __future__ import annotations

import json
import os

import pytest
from foundation_data import rust_bank_dict

from krill.errors import KrillError
from krill.formats.banks import detect_bank_format, load_bank, save_bank
from krill.formats.official import stable_id
from krill.schema import Skill, SkillBank


def test_rust_bank_reads_and_rewrites_identically(rust_bank, tmp_path):
    bank = load_bank(rust_bank)
    assert len(bank) == 4 and bank.current_cycle == 2
    assert [s.category for s in bank.skills_for("Heat")] == ["Heat"]
    out = save_bank(bank, tmp_path / "again.json")
    assert json.loads(out.read_text()) == rust_bank_dict()  # no krill noise for the Rust reader


def test_rust_to_official_to_rust_is_lossless(rust_bank, tmp_path):
    official = save_bank(load_bank(rust_bank), tmp_path / "official.json", fmt="official")
    data = json.loads(official.read_text())
    assert set(data["task_specific_skills"]) == {"heat", "look_at_obj_in_light"}  # official names
    assert set(data["general_skills"][0]) == {"skill_id", "title", "principle", "when_to_apply"}
    assert detect_bank_format(data) == "official"
    back = save_bank(load_bank(official), tmp_path / "back.json", fmt="krill")
    assert json.loads(back.read_text()) == rust_bank_dict()


def official_dict() -> dict:
    return {
        "general_skills": [
            {
                "skill_id": "gen_001",
                "title": "Plan First",
                "principle": "Plan the steps.",
                "when_to_apply": "Always.",
            }
        ],
        "task_specific_skills": {
            "heat": [
                {
                    "skill_id": "heat_001",
                    "title": "Microwave",
                    "principle": "Use it.",
                    "when_to_apply": "Heat.",
                }
            ],
            "examine": [
                {"skill_id": "ex_001", "title": "Lamp", "principle": "Use lamp.", "when_to_apply": "Look."}
            ],
            "pick_and_place": [
                {"skill_id": "pp_001", "title": "Go", "principle": "Go there.", "when_to_apply": "Put."}
            ],
        },
        "common_mistakes": [
            {
                "mistake_id": "m1",
                "description": "Looping.",
                "why_it_happens": "No memory.",
                "how_to_avoid": "Track.",
            }
        ],
        "metadata": {"env": "alfworld"},
    }


def test_official_bank_gets_stable_uuids_and_krill_categories(tmp_path):
    p = tmp_path / "claude_style_skills.json"
    p.write_text(json.dumps(official_dict()))
    a, b = load_bank(p), load_bank(p)
    heat = a.skills_for("Heat")[0]
    assert heat.id == stable_id("heat_001") == b.skills_for("Heat")[0].id  # same file → same ids
    assert heat.model_extra["official_id"] == "heat_001" and heat.name == "Microwave"
    assert [s.name for s in a.skills_for("Look")] == ["Lamp"]  # examine → Look
    assert a.categories() == ["Heat", "Look", "Pick"]
    assert a.common_mistakes[0].how_to_avoid == "Track."
    # official → krill → official keeps the official ids and text
    again = save_bank(load_bank(save_bank(a, tmp_path / "k.json")), tmp_path / "o.json", fmt="official")
    data = json.loads(again.read_text())
    assert data["task_specific_skills"]["heat"][0] == official_dict()["task_specific_skills"]["heat"][0]
    assert data["common_mistakes"][0]["mistake_id"] == "m1"


@pytest.mark.parametrize(
    ("mutate", "where", "words"),
    [
        (lambda d: d["general_skills"][1].pop("principle"), "general_skills[1].principle", "Field required"),
        (lambda d: d["general_skills"][0].update(principle=""), "general_skills[0].principle", "at least 1"),
        (
            lambda d: d["task_specific_skills"].update(Juggling=[]),
            "task_specific_skills.Juggling",
            "known: Pick",
        ),
        (
            lambda d: d["task_specific_skills"]["Heat"][0].update(category={"TaskSpecific": "Juggle"}),
            "task_specific_skills.Heat[0].category",
            "unknown category 'Juggle'",
        ),
        (
            lambda d: d["general_skills"][1].update(id=d["general_skills"][0]["id"]),
            "general_skills[1]",
            "duplicate skill id",
        ),
        (
            lambda d: d["task_specific_skills"]["Heat"][0].update(embedding=[1.0, 0.0]),
            "task_specific_skills.Heat[0].embedding",
            "mixed dimension",
        ),
    ],
)
def test_bad_banks_name_the_field(tmp_path, mutate, where, words):
    d = rust_bank_dict()
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(KrillError) as exc:
        load_bank(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: {where}: ") and words in msg and "\n" not in msg


def test_nan_embedding_is_located(tmp_path):
    text = json.dumps(rust_bank_dict()).replace("[0.0, 1.0, 0.0]", "[0.0, NaN, 0.0]")
    p = tmp_path / "nan.json"
    p.write_text(text)
    with pytest.raises(KrillError, match=r"general_skills\[1\]\.embedding\[1\]: nan is not a finite number"):
        load_bank(p)


def test_atomic_save_keeps_the_old_bank_when_the_write_fails(rust_bank, tmp_path, monkeypatch):
    target = tmp_path / "bank.json"
    save_bank(load_bank(rust_bank), target)
    before = target.read_bytes()
    bigger = load_bank(rust_bank)
    bigger.add(Skill(name="New", principle="p", when_to_apply="w"))

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KrillError, match="No space left"):
        save_bank(bigger, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bank.json")] == []  # no temp left


def test_empty_bank_round_trips_both_formats(tmp_path):
    for fmt in ("krill", "official"):
        p = save_bank(SkillBank(), tmp_path / f"empty_{fmt}.json", fmt=fmt)
        assert len(load_bank(p)) == 0


def test_official_mistakes_grouped_by_category_and_webshop_names(tmp_path):
    d = {
        "general_skills": [],
        "task_specific_skills": {
            "apparel": [
                {
                    "skill_id": "app_001",
                    "title": "Size",
                    "principle": "Pick size.",
                    "when_to_apply": "Clothes.",
                }
            ]
        },
        "common_mistakes": {
            "general": [{"mistake_id": "g1", "description": "Buying too early."}],
            "apparel": [{"mistake_id": "a1", "description": "Ignoring the size option."}],
        },
    }
    p = tmp_path / "webshop_official.json"
    p.write_text(json.dumps(d))
    bank = load_bank(p)
    assert bank.categories() == ["apparel"]
    assert [(m.mistake_id, m.category) for m in bank.common_mistakes] == [("g1", None), ("a1", "apparel")]
    assert [m.mistake_id for m in bank.mistakes_for("apparel")] == ["g1", "a1"]


def test_rust_webshop_search_category_round_trips(tmp_path):
    d = rust_bank_dict()
    d["task_specific_skills"] = {
        "search": [{**d["task_specific_skills"]["Heat"][0], "category": {"TaskSpecific": "search"}}]
    }
    d["history"] = d["history"][:3]
    p = tmp_path / "webshop_rust.json"
    p.write_text(json.dumps(d))
    assert json.loads(save_bank(load_bank(p), tmp_path / "again.json").read_text()) == d
