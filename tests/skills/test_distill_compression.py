"""Token compression report: retrieved-skill context vs raw-trajectory memory for the same tasks."""

from __future__ import annotations

import pytest
from test_analytic_synth import HashEmbedder, synth_trajectories

from krill.agent.prompts import skills_section
from krill.config import KrillConfig
from krill.evaluate.compression import compression_report, raw_memory_texts, token_counter
from krill.skills.distill import distill
from krill.skills.retrieval import Retriever
from krill.skills.teachers.analytic import AnalyticTeacher


@pytest.fixture(scope="module")
def setup():
    cfg = KrillConfig()
    trajs = synth_trajectories(60, 30, seed=11)
    emb = HashEmbedder()
    bank, _ = distill(trajs, AnalyticTeacher(cfg), emb, cfg)
    return cfg, trajs, emb, bank


def test_report_counts_both_memories_for_the_same_tasks(setup):
    cfg, trajs, emb, bank = setup
    rep = compression_report(bank, trajs, cfg, embedder=emb)
    assert rep["tasks"] == len({t.task_description for t in trajs})
    assert rep["skill_tokens_total"] > 0 and rep["raw_tokens_total"] > 0
    assert rep["ratio"] == pytest.approx(rep["skill_tokens_total"] / rep["raw_tokens_total"])
    assert rep["percent_fewer"] == pytest.approx(100 * (1 - rep["ratio"]))
    count, _ = token_counter()
    first = trajs[0]
    text = skills_section(Retriever(bank, emb, cfg.skill_retrieval).retrieve(first.task_description, "Heat"))
    assert "## Retrieved Relevant Experience" in text
    assert rep["skill_tokens_per_task"] > 0 and count([text])[0] > 0


def test_raw_memory_excludes_the_task_itself_and_grows_with_k(setup):
    cfg, trajs, emb, _ = setup
    wins = [t for t in trajs if t.success]
    (one,) = raw_memory_texts([wins[0]], wins, emb, 1, 300)
    assert wins[0].id not in one and one.count("Task: ") == 1
    small = compression_report(setup[3], trajs, cfg, embedder=emb, k_raw=1)
    big = compression_report(setup[3], trajs, cfg, embedder=emb, k_raw=4)
    assert big["raw_tokens_total"] > 2 * small["raw_tokens_total"]
    assert big["skill_tokens_total"] == small["skill_tokens_total"]
