"""Recursive skill evolution inside GRPO (issue 8): a failing category gets at most 3 new skills of its
own, the evolved bank is saved as banks/cycle_1.json, and the very next rollouts retrieve from it.

Everything is real except the policy's size: generated ALFWorld games on the real engine, the
analytic teacher reading real failed episodes, the tiny random Llama trained by `run_rl`.
"""

import importlib.resources

import pytest

from krill.agent.collect import CollectOptions, collect
from krill.config import load_config
from krill.formats.banks import load_bank
from krill.io import read_jsonl
from krill.skills.evolve import evolve_bank
from krill.train.evolution import make_evolve_hook
from krill.train.rl import run_rl

FAILING = "Heat"


@pytest.fixture
def cfg(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    monkeypatch.setenv("KRILL_CACHE", str(tmp_path_factory.getbasetemp() / "evolution-cache"))
    return load_config(
        preset="tiny",
        overrides=[
            "model.policy.device=cpu",
            "skill_retrieval.mode=template",  # every skill of the category is shown: prompts are checkable
            "rl.iterations=2",
            "evolution.validation_interval=1",
            "evolution.threshold=0.4",
        ],
    )


def _bank_without(category):
    bank = load_bank(importlib.resources.files("krill.data").joinpath("example_bank.json"))
    bank.task_specific_skills.pop(category, None)
    return bank


def _validation(cfg, tmp_path):
    """Real valid_seen episodes: the expert wins every category but Heat, where random play fails."""
    out = tmp_path / "validation"
    expert = collect(
        cfg, CollectOptions(episodes=12, policy="expert", split="valid_seen", out=str(out / "e.jsonl"))
    )
    rand = collect(
        cfg,
        CollectOptions(
            episodes=12, policy="random", split="valid_seen", max_steps=8, out=str(out / "r.jsonl")
        ),
    )
    won = [t for t in expert.trajectories if t.task_category != FAILING]
    lost = [t for t in rand.trajectories if t.task_category == FAILING and not t.success]
    assert won and lost, "the generated valid_seen split must hold Heat and other tasks"
    return won + lost


def test_evolve_bank_adds_at_most_three_skills_to_the_failing_category_only(cfg, tmp_path):
    from krill.models import build_embedder
    from krill.skills.teachers import make_teacher

    bank = _bank_without(FAILING)
    before = {c: [s.id for s in ss] for c, ss in bank.task_specific_skills.items()}
    general_before = [s.id for s in bank.general_skills]
    report = evolve_bank(bank, _validation(cfg, tmp_path), make_teacher(cfg), build_embedder(cfg), cfg)

    assert report.failing == [FAILING]
    assert 1 <= len(bank.skills_for(FAILING)) <= cfg.evolution.max_new_skills == 3
    assert {c: [s.id for s in ss] for c, ss in bank.task_specific_skills.items() if c != FAILING} == before
    assert [s.id for s in bank.general_skills] == general_before
    assert bank.current_cycle == 1
    new_ids = {s.id for s in bank.skills_for(FAILING)}
    assert {h.skill_id for h in bank.history if h.evolution_cycle == 1} == new_ids


class RecordingPolicy:
    """The tiny training policy, recording every prompt it is asked to continue."""

    def __init__(self, policy):
        self._policy, self.prompts = policy, []

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def generate(self, batch, **kw):
        self.prompts.append([m["content"] for msgs in batch for m in msgs])
        return self._policy.generate(batch, **kw)


def test_evolution_in_rl_saves_cycle_bank_and_next_rollouts_use_it(cfg, tmp_path, monkeypatch):
    from krill.envs.pool import make_pool
    from krill.train.setup import load_training_policy

    # RL trains on Heat games only, so the rollouts right after the cycle must show Heat's new skills.
    pool = make_pool(cfg, "train", min(cfg.model.policy.batch_size, cfg.rl.batch_size))
    ids = [t for t in pool.task_ids() if FAILING.lower() in t.lower()]
    monkeypatch.setattr(pool, "task_ids", lambda: ids)
    validation = _validation(cfg, tmp_path)
    run = tmp_path / "run"
    hook = make_evolve_hook(
        cfg, run / "rl", banks_dir=run / "banks", validate=lambda policy, bank, iteration: validation
    )
    policy = RecordingPolicy(load_training_policy(cfg))
    calls_per_iteration = []

    def counting_hook(iteration, policy_, bank, recent=None):
        calls_per_iteration.append(len(policy.prompts))
        return hook(iteration, policy_, bank, recent=recent)

    with pool:
        run_rl(cfg, _bank_without(FAILING), run / "rl", evolve_hook=counting_hook, policy=policy, pool=pool)

    cycle1 = load_bank(run / "banks" / "cycle_1.json")
    new = cycle1.skills_for(FAILING)
    assert 1 <= len(new) <= 3 and cycle1.current_cycle == 1
    after_cycle = [
        p for batch in policy.prompts[calls_per_iteration[0] : calls_per_iteration[1]] for p in batch
    ]
    assert after_cycle and all(s.name in "\n".join(after_cycle) for s in new)
    before_cycle = "\n".join(p for batch in policy.prompts[: calls_per_iteration[0]] for p in batch)
    assert not any(s.name in before_cycle for s in new)
    logged = list(read_jsonl(run / "rl" / "evolution.jsonl"))
    assert [r["cycle"] for r in logged] == [1, 2]
    assert logged[0]["failing"] == [FAILING] and logged[0]["added"][FAILING] == [s.name for s in new]
