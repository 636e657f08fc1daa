"""The offline (analytic) teacher: grounded, deterministic, traceable skills from ALFWorld/WebShop trajectories."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_analytic_synth import HashEmbedder, steps_from, synth_trajectories

from krill.categories import ALFWORLD_CATEGORIES
from krill.config import KrillConfig
from krill.schema import Step, Trajectory
from krill.skills.distill import distill
from krill.skills.teachers.analytic import AnalyticTeacher, role_plan
from krill.skills.teachers.failure_modes import detect_modes
from krill.skills.trajectory_facts import parse_act, parse_trajectory, task_goal


@pytest.fixture(scope="module")
def trajs():
    return synth_trajectories(200, 200, seed=0)


@pytest.fixture(scope="module")
def distilled(trajs):
    cfg = KrillConfig()
    return distill(trajs, AnalyticTeacher(cfg), HashEmbedder(), cfg)


def test_acceptance_bank_from_200_expert_and_200_failed(trajs, distilled):
    bank, report = distilled
    assert report.trajectories == 400 and report.successes == 200 and report.failures == 200
    assert bank.general_skills, "no general skills"
    assert set(ALFWORLD_CATEGORIES) <= set(bank.task_specific_skills), bank.task_specific_skills.keys()
    assert all(bank.task_specific_skills[c] for c in ALFWORLD_CATEGORIES)
    assert bank.common_mistakes and all(m.provenance for m in bank.common_mistakes)
    assert len(bank) < 120
    skills = bank.all_skills()
    mat = np.array([s.embedding for s in skills])
    sims = mat @ mat.T - np.eye(len(skills)) * 2
    assert sims.max() < KrillConfig().distill.merge_threshold
    assert report.total_skills == len(bank)


def test_every_statement_traceable_to_input_trajectories(trajs, distilled):
    bank, _ = distilled
    by_id = {t.id: t for t in trajs}
    for s in bank.all_skills():
        assert s.provenance, s.name
        for p in s.provenance:
            assert p.trajectory_id in by_id
            assert by_id[p.trajectory_id].success == p.success
        if not s.is_general:  # a task-specific skill is supported by its own category only
            assert {by_id[p.trajectory_id].task_category for p in s.provenance} == {s.category}
    general_support = [
        {by_id[p.trajectory_id].task_category for p in s.provenance} for s in bank.general_skills
    ]
    assert all(len(c) >= 2 for c in general_support)


def test_counts_in_text_match_provenance(distilled):
    bank, _ = distilled
    heat = bank.skills_for("Heat")
    plan = next(s for s in heat if s.name == "Heat task plan")
    k = int(plan.principle.split(" of ")[0])
    assert k == len(plan.provenance)
    assert "microwave" in plan.principle


def test_different_inputs_give_different_skills_and_same_input_same_bank(distilled):
    cfg = KrillConfig()
    other, _ = distill(
        synth_trajectories(120, 120, seed=7, prefix="u"), AnalyticTeacher(cfg), HashEmbedder(), cfg
    )
    a = {(s.name, s.principle) for s in distilled[0].all_skills()}
    b = {(s.name, s.principle) for s in other.all_skills()}
    assert not (a & b), a & b
    again, _ = distill(synth_trajectories(200, 200, seed=0), AnalyticTeacher(cfg), HashEmbedder(), cfg)
    assert [s.id for s in again.all_skills()] == [s.id for s in distilled[0].all_skills()]


def test_parse_act_handles_both_put_forms():
    assert parse_act("move apple 1 to fridge 1").verb == "put"
    assert parse_act("put apple 1 in/on fridge 1") == parse_act("put apple 1 in/on fridge 1")
    act = parse_act("put apple 1 in/on fridge 1")
    assert (act.verb, act.obj, act.recep) == ("put", "apple", "fridge")
    heat = parse_act("heat egg 2 with microwave 1")
    assert (heat.verb, heat.obj, heat.recep) == ("heat", "egg", "microwave")
    assert not parse_act("take apple 1 from table 1", False).valid


@pytest.mark.parametrize(
    "task,expect",
    [
        ("put a hot apple in fridge", ("apple", "fridge")),
        ("Your task is to: heat some egg and put it in garbagecan.", ("egg", "garbagecan")),
        ("put two cellphone in bed.", ("cellphone", "bed")),
        ("find two pillow and put them in sofa.", ("pillow", "sofa")),
        ("look at bowl under the desklamp.", ("bowl", "desklamp")),
        ("put some spraybottle on toilet.", ("spraybottle", "toilet")),
    ],
)
def test_task_goal(task, expect):
    assert task_goal(task) == expect


def _ep(task, cat, actions):
    return parse_trajectory(
        Trajectory(id="x", task_description=task, task_category=cat, steps=steps_from(actions))
    )


def test_failure_modes_detected():
    ep = _ep("put a hot apple in fridge", "Heat", [
        ("go to countertop 1", "You arrive at countertop 1. On the countertop 1, you see a apple 1."),
        ("take apple 1 from countertop 1", "You pick up the apple 1 from the countertop 1."),
        ("go to fridge 1", "You arrive at fridge 1. The fridge 1 is closed."),
        ("move apple 1 to fridge 1", "You put the apple 1 in/on the fridge 1."),
    ])  # fmt: skip
    assert "skipped_transform" in detect_modes(ep, 50)
    loop = _ep("put a pen in desk", "Pick", [("go to desk 1", "Nothing happens.")] * 6)
    modes = detect_modes(loop, 6)
    assert {"loop", "invalid", "step_limit", "never_found"} <= set(modes)
    wrong = _ep("put a pen in desk", "Pick", [
        ("go to drawer 1", "You arrive at drawer 1. On the drawer 1, you see a pen 1."),
        ("take pen 1 from drawer 1", "You pick up the pen 1 from the drawer 1."),
        ("go to shelf 1", "You arrive at shelf 1."), ("put pen 1 in/on shelf 1", "You put the pen 1 in/on the shelf 1."),
    ])  # fmt: skip
    assert detect_modes(wrong, 50).get("wrong_receptacle") == "shelf"


def test_role_plan_abstracts_objects_and_places(trajs):
    heat = next(t for t in trajs if t.success and t.task_category == "Heat")
    plan = role_plan(parse_trajectory(heat))
    assert "heat it with the microwave" in plan and "take it" in plan
    assert not any(ch.isdigit() for ch in plan)


def test_propose_for_category_only_that_category_and_at_most_max_new(trajs, distilled):
    failures = [t for t in trajs if not t.success and t.task_category == "Cool"][:15]
    existing = distilled[0].skills_for("Cool")
    new = AnalyticTeacher().propose_for_category("Cool", failures, existing, 2)
    assert 0 < len(new) <= 2
    assert all(s.category == "Cool" for s in new)
    assert all(p.trajectory_id in {t.id for t in failures} for s in new for p in s.provenance)
    names = {s.name for s in existing}
    assert not names & {s.name for s in new}
    assert AnalyticTeacher().propose_for_category("Cool", failures, [], 3, shallow=[]) != []


def _web(tid, success, actions, cat="apparel"):
    steps = [Step(action=a, observation="ok", step_index=i) for i, a in enumerate(actions)]
    return Trajectory(
        id=tid, task_description="Instruction: i need a red cotton t-shirt in size large, price lower than 30.00 dollars",
        task_category=cat, steps=steps, success=success, metadata={"environment": "webshop"},
    )  # fmt: skip


def test_webshop_skills():
    good = [
        "search[red cotton t-shirt large]",
        "click[b01abcdefg]",
        "click[large]",
        "click[red]",
        "click[buy now]",
    ]
    bad = ["search[shirt]", "search[t shirt]", "search[red shirt]", "click[b01abcdefg]", "click[buy now]"]
    trajs = [_web(f"w{i}", True, good, cat) for i, cat in enumerate(["apparel", "footwear"] * 3)]
    trajs += [_web(f"f{i}", False, bad) for i in range(4)]
    out = AnalyticTeacher().propose(trajs)
    names = {s.name: s for s in out.skills}
    assert "Select every requested option before Buy Now" in names
    assert names["Search with the product type and key attributes"].category == "General"
    assert any("without choosing options" in s.name for s in out.skills)
    assert any(m.category == "apparel" for m in out.mistakes)
    assert all(next(iter(itertools.islice(s.provenance, 1))).trajectory_id for s in out.skills)
