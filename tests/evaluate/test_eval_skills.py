"""The eval result's `skills` block: which skills the prompts carried, and how many episodes carried
one that evolution added (hand-built bank and trajectories; one real `evaluate` over a fake actor)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
sys.path.insert(0, str(Path(__file__).parents[1] / "skills"))
from agent_fakes import EnvListPool, KitchenEnv  # noqa: E402
from test_evolved import hand_bank  # noqa: E402

from krill.agent.actors import Decision  # noqa: E402
from krill.config import KrillConfig  # noqa: E402
from krill.errors import KrillError  # noqa: E402
from krill.evaluate.eval import EVAL_FORMAT, evaluate, load_eval, skill_usage  # noqa: E402
from krill.evaluate.stats import summarize  # noqa: E402
from krill.io import write_json  # noqa: E402
from krill.schema import Step, Trajectory  # noqa: E402


def _traj(skills: list[str]) -> Trajectory:
    return Trajectory(task_description="t", task_category="Heat", success=False,
                      steps=[Step(observation="o", action="a")], metadata={"skills_used": skills})  # fmt: skip


def test_skill_usage_counts_episodes_skills_and_evolved_ones():
    # 5 episodes: two carry evolved skills (e1; e2 with d0), one only distilled ones, one none, one
    # a skill distilled at cycle 0 and filed again at cycle 1 (not evolved)
    trajs = [_traj(["d0", "e1"]), _traj(["e2", "d0", "g0"]), _traj(["d0"]), _traj([]), _traj(["re"])]
    assert skill_usage(trajs, hand_bank()) == {
        "episodes": 5,
        "with_skills": 4,
        "distinct_used": 5,  # d0, e1, e2, g0, re
        "evolved_in_bank": 2,
        "with_evolved": 2,
        "evolved_share": 0.4,
        "evolved_used": ["e1", "e2"],
    }


def test_skill_usage_without_a_bank_or_episodes():
    assert skill_usage([_traj(["m1"])], None)["evolved_in_bank"] == 0  # the memory baseline: no bank
    empty = skill_usage([], hand_bank())
    assert (empty["episodes"], empty["evolved_share"], empty["evolved_used"]) == (0, 0.0, [])


def _eval_file(path: Path, **extra) -> Path:
    res = {k: v.to_dict() for k, v in summarize([_traj([])]).items()}
    return write_json(path, {"format": EVAL_FORMAT, "env": "alfworld", "split": "s", "policy": "local",
                             "results": res, **extra})  # fmt: skip


def test_load_eval_accepts_results_without_the_block_and_checks_one_given(tmp_path):
    assert "skills" not in load_eval(_eval_file(tmp_path / "old.json"))
    good = skill_usage([_traj(["e1"])], hand_bank())
    assert load_eval(_eval_file(tmp_path / "new.json", skills=good))["skills"]["evolved_share"] == 1.0
    bad = {k: v for k, v in good.items() if k != "with_evolved"}
    with pytest.raises(KrillError, match="missing field"):
        load_eval(_eval_file(tmp_path / "bad.json", skills=bad))


class SkillActor:
    """Looks around; task tK's prompt carried the skills SKILLS[tK] (none for the other tasks), recorded
    as an LLM actor records them."""

    name = "skill-actor"
    SKILLS = {"t0": ["e1", "d0"], "t1": ["d0"], "t2": []}

    def act(self, episodes, pool):
        return [Decision("look", extras={"skills_used": self.SKILLS.get(ep.task_id, [])}) for ep in episodes]


def test_evaluate_writes_the_skills_block(tmp_path):
    out = tmp_path / "eval.json"
    pool = EnvListPool([KitchenEnv() for _ in range(2)])  # its 6 tasks t0..t5
    evaluate(KrillConfig(), policy="skill-actor", bank=hand_bank(), out=out, actor=SkillActor(), pool=pool)
    skills = json.loads(out.read_text())["skills"]
    assert (skills["episodes"], skills["with_skills"], skills["with_evolved"]) == (6, 2, 1)
    assert skills["evolved_used"] == ["e1"] and skills["evolved_share"] == pytest.approx(1 / 6)


def test_a_result_records_how_it_was_made_and_compare_warns_when_that_differs(tmp_path, capsys):
    """Issue 31: `before.json` and `after.json` both said `"model": "smollm2"` and nothing else."""
    from krill.cli.main import main

    pool = EnvListPool([KitchenEnv() for _ in range(2)])
    cfg = KrillConfig().override({"agent.context": "conversation", "eval.seed": 3})
    evaluate(cfg, policy="skill-actor", bank=hand_bank(), out=tmp_path / "a" / "eval" / "after.json",
             actor=SkillActor(), pool=pool)  # fmt: skip
    prov = json.loads((tmp_path / "a" / "eval" / "after.json").read_text())["provenance"]
    assert prov["prompt"]["context"] == "conversation" and prov["seed"] == 3 and prov["max_steps"] == 10
    assert prov["bank_skills"] == len(hand_bank()) and len(prov["bank_sha256"]) == 16
    assert prov["env"] == "alfworld" and prov["krill_version"] and len(prov["config_sha256"]) == 16
    other = cfg.override({"agent.context": "window"})
    evaluate(other, policy="skill-actor", bank=hand_bank(), out=tmp_path / "b" / "eval" / "after.json",
             actor=SkillActor(), pool=EnvListPool([KitchenEnv() for _ in range(2)]))  # fmt: skip
    with pytest.raises(SystemExit):
        main(["eval", "--compare", str(tmp_path / "a" / "eval" / "after.json"),
              str(tmp_path / "b" / "eval" / "after.json")])  # fmt: skip
    got = capsys.readouterr()
    assert "warning: the results were made differently: prompt:" in got.err and '"window"' in got.err
    assert (
        "a/eval/after" in got.out and "b/eval/after" in got.out
    )  # columns named by run, not "after | after"
    assert "Fisher's exact test p = 1 (two-sided)" in got.out


@pytest.mark.slow
def test_eval_of_a_run_folder_uses_the_runs_settings_adapter_and_bank(tmp_path, monkeypatch, capsys):
    """Issue 31: `krill eval --model runs/quick/rl` ran with the paper's defaults (window prompt, 50 steps,
    free decoding) although the adapter was trained in conversation mode with whole-action choice."""
    from krill.cli.main import main
    from krill.formats.banks import save_bank
    from krill.models.tiny import build_tiny_model
    from krill.runrecord import record_config
    from krill.train.checkpoint import export_model, make_trainable

    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    monkeypatch.chdir(tmp_path)
    cfg = KrillConfig().override({"model.policy.model": "tiny", "model.policy.device": "cpu",
                                  "agent.context": "conversation", "agent.constrain_actions": True,
                                  "env.alfworld.max_steps": 3, "env.alfworld.train_games": 6,
                                  "env.alfworld.valid_seen_games": 6, "env.alfworld.valid_unseen_games": 6,
                                  "cache_dir": str(tmp_path / "cache")})  # fmt: skip
    run = tmp_path / "run"
    record_config(cfg, run)
    model, tok = build_tiny_model(0)
    export_model(make_trainable(model, cfg.lora), tok, run / "rl" / "adapter", cfg)
    save_bank(hand_bank(), run / "rl" / "bank.json")
    with pytest.raises(SystemExit) as done:
        main(["eval", "--model", str(run), "--episodes", "2", "--out", "r.json"])
    assert done.value.code == 0, capsys.readouterr().err
    assert f"settings from {run / 'config.yaml'}" in " ".join(capsys.readouterr().err.split())
    prov = json.loads((tmp_path / "r.json").read_text())["provenance"]
    assert prov["prompt"]["context"] == "conversation" and prov["decoding"]["constrain_actions"] is True
    assert prov["max_steps"] == 3 and prov["adapter"] == str(run / "rl" / "adapter")
    assert prov["bank_skills"] == len(hand_bank())


def test_a_result_names_its_games_and_compare_warns_when_they_differ(tmp_path, capsys):
    """Results on other games are not comparable: the provenance hashes the task ids played."""
    from krill.cli.main import main

    cfg = KrillConfig()
    paths = []
    for name, episodes in (("a", 2), ("b", 2), ("c", 3)):
        paths.append(tmp_path / f"{name}.json")
        evaluate(cfg, policy="skill-actor", bank=hand_bank(), out=paths[-1], actor=SkillActor(), episodes=episodes,
                 pool=EnvListPool([KitchenEnv() for _ in range(2)]))  # fmt: skip
    a, b, c = (json.loads(p.read_text())["provenance"] for p in paths)
    assert a["tasks"] == 2 and a["tasks_sha256"] == b["tasks_sha256"] != c["tasks_sha256"]
    with pytest.raises(SystemExit):
        main(["eval", "--compare", str(paths[0]), str(paths[2])])
    assert "made differently: tasks_sha256:" in capsys.readouterr().err


def test_eval_episodes_stratify_by_the_games_category(tmp_path):
    """`eval --episodes 6` on ALFWorld drew one category twice and none of another: the env now names a
    game's category from its folder without a reset, so 6 episodes are one of each task type."""
    from krill.config import load_config
    from krill.envs.base import make_env
    from krill.evaluate.eval import stratified_tasks, task_categories

    cfg = load_config(preset="tiny", overrides=[f"cache_dir={tmp_path / 'cache'}"])
    env = make_env("alfworld", "valid_unseen", cfg=cfg)
    ids = env.task_ids()
    cats = task_categories(env, ids)
    assert env.task_category_of("pick_heat_then_place_in_recep-Egg-None-Fridge-1/trial_K0_00001") == "Heat"
    for seed in (0, 1, 2):
        assert sorted(cats[t] for t in stratified_tasks(ids, cats, 6, seed)) == sorted(
            ["Pick", "PickTwo", "Look", "Clean", "Heat", "Cool"]
        )
    web = make_env("webshop", "test", cfg=cfg)
    wcats = task_categories(web, web.task_ids())
    assert None not in wcats.values() and len(set(wcats.values())) >= 5
