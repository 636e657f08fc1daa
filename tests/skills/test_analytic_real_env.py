"""The analytic teacher on real rollouts: expert and random agents in generated ALFWorld games (slow)."""

from __future__ import annotations

import pytest
from test_analytic_synth import HashEmbedder

from krill.agent.collect import CollectOptions, collect
from krill.config import load_config
from krill.skills.distill import distill
from krill.skills.teachers.analytic import AnalyticTeacher


@pytest.mark.slow  # plays ~30 real ALFWorld episodes on the TextWorld engine (about 2 minutes on 2 cores)
def test_distill_from_real_expert_and_random_rollouts(tmp_path, monkeypatch):

    monkeypatch.setenv("KRILL_CACHE", str(tmp_path / "cache"))
    cfg = load_config(overrides=[f"cache_dir={tmp_path / 'cache'}", "env.alfworld.train_games=24"])
    expert = collect(cfg, CollectOptions(episodes=18, policy="expert", out=str(tmp_path / "e.jsonl")))
    rand = collect(
        cfg, CollectOptions(episodes=12, policy="random", max_steps=15, seed=1, out=str(tmp_path / "r.jsonl"))
    )
    trajs = [*expert.trajectories, *rand.trajectories]
    assert sum(t.success for t in expert.trajectories) >= 15
    bank, report = distill(trajs, AnalyticTeacher(cfg), HashEmbedder(), cfg)
    assert report.successes >= 15 and report.failures >= 10
    won = {t.task_category for t in trajs if t.success}
    assert won <= set(bank.task_specific_skills)  # every category with a success has its own skills
    assert bank.general_skills and bank.common_mistakes
    ids = {t.id for t in trajs}
    assert all(p.trajectory_id in ids for s in bank.all_skills() for p in s.provenance)
    names = {s.name for s in bank.all_skills()}
    assert "Spend the step budget on the likeliest places" in names  # random episodes hit the 15-step cap
