"""ETO conversion (both flag styles) and the original krill config.demo.json mapping."""

from __future__ import annotations

import json

import pytest

from krill.config import load_config
from krill.errors import KrillError
from krill.formats.eto import convert_eto
from krill.formats.original_config import is_original_config, map_original_config
from krill.formats.trajectories import load_trajectories

INSTRUCTIONS = (
    "Interact with a household to solve a task. Imagine you are an intelligent agent in a household "
    "environment ... Your response should use the following format:\n\nThought: <your thoughts>\nAction: <your next action>"
)
ROOM = "You are in the middle of a room. Looking quickly around you, you see a countertop 1, a drawer 1, and a microwave 1."


def episode(eid: str, task: str, acts: list[tuple[str, str]], game_file: str | None = None) -> dict:
    conv = [
        {"from": "human", "value": INSTRUCTIONS},
        {"from": "gpt", "value": "OK"},
        {"from": "human", "value": f"{ROOM}\nYour task is to: {task}"},
    ]
    for action, obs in acts:
        conv.append({"from": "gpt", "value": f"Thought: next I {action}.\nAction: {action}"})
        conv.append({"from": "human", "value": f"Observation: {obs}"})
    out = {"id": eid, "conversations": conv}
    if game_file:
        out["game_file"] = game_file
    return out


@pytest.fixture
def eto_file(tmp_path):
    data = [
        episode(
            "alfworld_0",
            "put a hot egg in diningtable.",
            [
                ("go to countertop 1", "On the countertop 1, you see a egg 1."),
                ("take egg 1 from countertop 1", "You pick up the egg 1 from the countertop 1."),
                ("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
            ],
            game_file="json_2.1.1/train/pick_heat_then_place_in_recep-Egg-None-DiningTable-7/trial_T1/game.tw-pddl",
        ),
        episode(
            "pick_two_obj_and_place-CD-None-Drawer-310",
            "put two cd in drawer.",
            [("go to drawer 1", "The drawer 1 is closed.")],
        ),
        episode(
            "alfworld_2",
            "clean some mug and put it in coffeemachine.",
            [("go to countertop 1", "You see a mug 1.")],
        ),
        {
            "id": "no_task",
            "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "OK"}],
        },
    ]
    p = tmp_path / "alfworld_raw.json"
    p.write_text(json.dumps(data))
    return p


def test_eto_conversion(eto_file, tmp_path):
    summary = convert_eto(eto_file, tmp_path / "out.jsonl")
    assert summary["per_category"] == {"Clean": 1, "Heat": 1, "PickTwo": 1}
    assert summary["total_steps"] == 5 and summary["skipped"] == 1
    heat = load_trajectories(tmp_path / "out.jsonl")[0]
    assert heat.task_description == "put a hot egg in diningtable." and heat.success
    assert heat.steps[0].observation == ROOM  # the instructions preamble is not an observation
    assert [s.action for s in heat.steps][-1] == "heat egg 1 with microwave 1"
    assert heat.steps[1].observation == "On the countertop 1, you see a egg 1."  # "Observation:" stripped
    assert heat.steps[-1].reward == heat.total_reward == 10.0
    assert heat.metadata["final_observation"] == "You heat the egg 1 using the microwave 1."


def test_eto_cli_with_the_original_flags(eto_file, tmp_path, cli):
    out = tmp_path / "data" / "alfworld_trajectories.json"
    code, stdout, _ = cli("convert", "eto", "--input", str(eto_file), "--output", str(out), "--max", "2")
    assert code == 0
    assert (
        "Converted 2 trajectories:\n  Heat: 1\n  PickTwo: 1\n  Total steps: 4\n  Avg steps/trajectory: 2.0"
        in stdout
    )
    assert json.loads(out.read_text())[0]["task_category"] == "Heat"  # .json → the Rust array
    code, stdout, _ = cli("convert", "eto", str(eto_file), str(tmp_path / "all.jsonl"))
    assert code == 0 and "Converted 3 trajectories" in stdout


def test_eto_bad_input(tmp_path, cli):
    p = tmp_path / "eto.json"
    p.write_text('{"not": "a list"}')
    code, _, err = cli("convert", "eto", str(p), str(tmp_path / "o.jsonl"))
    assert code == 2 and err.startswith(f"error: {p}: expected a JSON list") and err.count("\n") == 1


DEMO = {
    "sft": {"learning_rate": 2e-4, "batch_size": 8, "epochs": 2},
    "rl": {
        "learning_rate": 1e-6, "batch_size": 32, "group_size": 4, "kl_coeff": 0.02, "clip_epsilon": 0.3,
        "invalid_action_penalty": 0.2, "max_prompt_length": 4000, "max_response_length": 512, "training_epochs": 7,
    },
    "skill_retrieval": {"top_k": 5, "similarity_threshold": 0.35},
    "evolution": {
        "validation_interval": 3, "max_new_skills": 2, "evolution_threshold": 0.5,
        "max_analysis_deep": 8, "max_analysis_shallow": 4,
    },
    "model": {
        "policy_api_base": "http://127.0.0.1:8000/v1", "policy_model_id": "gpt-4o-mini",
        "teacher_api_base": "http://127.0.0.1:8000/v1", "teacher_model_id": "gpt-4o",
        "policy_api_key": "", "teacher_api_key": "sk-do-not-store-me",
        "embedding_api_base": "http://127.0.0.1:8000/v1", "embedding_model_id": "text-embedding-3-small",
        "embedding_api_key": "",
    },
}  # fmt: skip


def test_original_config_maps_every_key(tmp_path, capsys):
    p = tmp_path / "config.demo.json"
    p.write_text(json.dumps(DEMO))
    assert is_original_config(DEMO) and not is_original_config({"rl": {"kl_coef": 0.1}})
    cfg = load_config(p)
    assert (cfg.sft.learning_rate, cfg.sft.batch_size, cfg.sft.epochs) == (2e-4, 8, 2)
    assert (cfg.rl.kl_coef, cfg.rl.clip_ratio, cfg.rl.iterations, cfg.rl.group_size) == (0.02, 0.3, 7, 4)
    assert (cfg.rl.invalid_action_penalty, cfg.agent.max_prompt_length, cfg.model.policy.max_new_tokens) == (
        0.2,
        4000,
        512,
    )
    assert (cfg.skill_retrieval.top_k, cfg.skill_retrieval.threshold) == (5, 0.35)
    ev = cfg.evolution
    assert (ev.validation_interval, ev.max_new_skills, ev.threshold, ev.deep, ev.shallow) == (3, 2, 0.5, 8, 4)
    assert (cfg.model.teacher.backend, cfg.model.teacher.model) == ("llm", "gpt-4o")
    assert (cfg.model.embedding.backend, cfg.model.embedding.api_base) == (
        "openai",
        "http://127.0.0.1:8000/v1",
    )
    assert cfg.model.policy.model == "gpt-4o-mini" and cfg.model.policy.api_key_env == "OPENAI_API_KEY"
    assert "sk-do-not-store-me" not in json.dumps(cfg.to_public_dict())
    assert "model.teacher_api_key: API keys are not read from config files" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"rl": {"kl_coeff": 0.1, "warmup": 3}}, "rl.warmup"),
        ({"model": {"teacher_model_id": "x", "teacher_org": "y"}}, "model.teacher_org"),
    ],
)
def test_original_config_unknown_key_is_named(tmp_path, patch, where):
    with pytest.raises(KrillError, match=rf"config.demo.json: {where}: unknown key in original krill config"):
        map_original_config(patch, path=tmp_path / "config.demo.json")


def test_config_show_masks_and_shows_the_mapping(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-secret")
    p = tmp_path / "config.demo.json"
    p.write_text(json.dumps(DEMO))
    code, out, _ = cli("config", "show", "--config", str(p))
    assert code == 0
    assert "#   rl.kl_coeff -> rl.kl_coef = 0.02" in out
    assert (
        "#   model.teacher_api_key (****, not stored) -> model.teacher.api_key_env = 'OPENAI_API_KEY'" in out
    )
    assert "# secret $OPENAI_API_KEY: **** (set)" in out
    assert "sk-live-secret" not in out and "sk-do-not-store-me" not in out
    import yaml

    shown = yaml.safe_load(out)
    assert shown["rl"]["kl_coef"] == 0.02 and shown["model"]["teacher"]["backend"] == "llm"
