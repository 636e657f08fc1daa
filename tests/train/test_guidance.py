"""Guided GRPO groups (`rl.guidance`): which rollouts replay an expert prefix, which tokens and decisions
carry gradient, LUFFY's off-policy weight, and a real run where an all-failed group gets the expert."""

import sys
from pathlib import Path

import pytest
import torch

from krill.config import load_config
from krill.formats.trajectories import load_trajectories
from krill.io import read_jsonl
from krill.schema import SkillBank, Step, Trajectory
from krill.train.grpo import grpo_loss
from krill.train.guidance import Slot, all_failed, group_by, next_fraction, plan_slots
from krill.train.rl import run_rl
from krill.train.samples import build_samples

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
from agent_fakes import EnvListPool, KitchenEnv  # noqa: E402


class _Tok:
    """Whitespace 'tokenizer': each word's length is its id (enough to lay out ids by hand)."""

    def __call__(self, texts, add_special_tokens=False):
        one = isinstance(texts, str)
        ids = [[len(w) for w in t.split()] for t in ([texts] if one else texts)]
        return {"input_ids": ids[0] if one else ids}


def _step(action, context, *, guided=False, choices=("look", "go to desk 1")):
    extra = {"context_ids": context, "context_reset": not context or context[0] == 1,
             "response_token_ids": [9, 0], "choices": list(choices), "choice_index": 1, "choice_logprob": -0.7}  # fmt: skip
    if guided:
        extra = {**extra, "guided": True, "choice_logprob": None}
    return Step(observation="o", action=action, **extra)


def test_plan_slots_puts_the_guided_rollouts_in_their_own_group():
    experts = {"a": ["e1", "e2", "e3", "e4", "e5", "e6"], "b": None}
    slots = plan_slots(["a", "b"], group_size=4, guided=2, fraction=0.5, experts=experts)
    assert slots == [Slot("a", 0), Slot("a", 0), Slot("a", 1, ("e1", "e2", "e3")), Slot("a", 1, ("e1", "e2", "e3")),
                     Slot("b", 2), Slot("b", 2), Slot("b", 2), Slot("b", 2)]  # fmt: skip
    # the policy always plays the expert's last step itself; a prefix of 0 steps is no guidance
    assert plan_slots(["a"], 2, 2, 1.0, experts)[0].guide == ("e1", "e2", "e3", "e4", "e5")
    assert plan_slots(["a"], 2, 1, 0.05, experts) == [Slot("a", 0), Slot("a", 0)]
    trajs = [Trajectory(task_description=s.task, metadata={"n": i}) for i, s in enumerate(slots)]
    assert [[t.metadata["n"] for t in g] for g in group_by(trajs, slots)] == [[0, 1], [2, 3], [4, 5, 6, 7]]


def test_prefix_shrinks_once_guided_rollouts_win_half_the_time():
    guided = [_step("go to desk 1", [1, 2], guided=True), _step("look", [3])]
    won = Trajectory(task_description="t", steps=guided, success=True)
    lost = Trajectory(task_description="t", steps=guided, success=False)
    assert next_fraction(0.5, [won, lost], 0.1) == 0.4
    assert next_fraction(0.5, [won, lost, lost], 0.1) == 0.5
    assert next_fraction(0.05, [won], 0.1) == 0.0
    assert all_failed([lost, lost]) is False  # guided rollouts are not "the policy failing alone"


def test_expert_prefix_steps_are_context_and_carry_no_gradient():
    traj = Trajectory(task_description="t", steps=[
        _step("go to desk 1", [1, 2], guided=True),  # the expert's two-step prefix
        _step("go to desk 1", [3], guided=True),
        _step("look", [4, 4]),  # the policy from here on
        _step("go to desk 1", [5]),
    ], total_reward=10.0, success=True)  # fmt: skip
    (tokens,) = build_samples([traj], torch.tensor([1.0]), _Tok())
    assert tokens.ids == [1, 2, 9, 0, 3, 9, 0, 4, 4, 9, 0, 5, 9, 0]
    assert tokens.action_mask == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1]  # the policy's replies only
    (choices,) = build_samples([traj], torch.tensor([1.0]), _Tok(), choice=True)
    assert [(c.end, c.off_policy, c.recorded) for c in choices.choice_steps] == [
        (9, False, -0.7),
        (12, False, -0.7),
    ]


def test_an_expert_episode_added_to_a_group_is_trained_off_policy():
    expert = Trajectory(task_description="t", steps=[_step("go to desk 1", [1, 2], guided=True),
                                                      _step("go to desk 1", [3], guided=True)],
                        total_reward=10.0, success=True, metadata={"guide": "expert"})  # fmt: skip
    (s,) = build_samples([expert], torch.tensor([1.5]), _Tok(), choice=True)
    assert [(c.end, c.off_policy, c.recorded, c.advantage) for c in s.choice_steps] == [
        (2, True, None, 1.5), (5, True, None, 1.5)]  # fmt: skip
    assert s.action_mask == [0, 0, 1, 1, 0, 1, 1]


def test_luffy_shaped_weight_replaces_the_ratio_for_expert_actions():
    # L = −A·π/(π+γ) with π = e^logp: ∂L/∂logp = −A·γ·π/(π+γ)²; unclipped, so a rare expert action still pulls
    logp = torch.log(torch.tensor([[0.05], [0.05]])).requires_grad_()
    off = torch.tensor([[1.0], [0.0]])
    loss, _ = grpo_loss(logp, logp.detach(), logp.detach(), torch.tensor([2.0, 2.0]), torch.ones(2, 1), 0.2, 0.0,
                        off_policy=off, shaping_gamma=0.1)  # fmt: skip
    loss.backward()
    pi, g = 0.05, 0.1
    assert logp.grad[0, 0].item() == pytest.approx(-2.0 * g * pi / (pi + g) ** 2 / 2, rel=1e-5)  # mean over 2
    assert logp.grad[1, 0].item() == pytest.approx(-2.0 / 2, rel=1e-5)  # on-policy: −A·ρ, ρ = 1


@pytest.mark.slow
def test_mixed_guidance_run_adds_the_expert_to_failed_groups_and_updates(tmp_path, monkeypatch):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    monkeypatch.setenv("KRILL_CACHE", str(tmp_path / "cache"))
    cfg = load_config(preset="tiny", overrides=[
        "model.policy.device=cpu", "agent.context=conversation", "agent.constrain_actions=true",
        "rl.guidance=mixed", "rl.group_size=2", "rl.batch_size=4", "rl.guided_rollouts=1", "rl.guide_fraction=0.5",
        "rl.iterations=1", "rl.max_steps=6", "rl.kl_coef=0", "model.policy.batch_size=4"])  # fmt: skip
    run_rl(cfg, SkillBank(), tmp_path / "rl", pool=EnvListPool([KitchenEnv() for _ in range(4)]))
    row = list(read_jsonl(tmp_path / "rl" / "metrics.jsonl"))[-1]
    trajs = load_trajectories(tmp_path / "rl" / "rollouts" / "iter_1.jsonl")
    guided = [t for t in trajs if t.metadata["guided_steps"] and t.metadata.get("guide") != "expert"]
    experts = [t for t in trajs if t.metadata.get("guide") == "expert"]
    # the kitchen expert wins in 6 steps: half of them replayed, then the policy goes on
    assert len(guided) == 2 and all(t.metadata["guided_steps"] == 3 for t in guided)
    for t in guided:
        obj = t.steps[1].action.split()[1]
        assert [s.action for s in t.steps[:3]] == ["go to countertop 1", f"take {obj} 1 from countertop 1",
                                                   "go to microwave 1"]  # fmt: skip
    # the random tiny model never wins the kitchen: both plain groups failed and got the expert's episode
    assert len(experts) == 2 and all(
        t.success and all(s.model_extra["guided"] for s in t.steps) for t in experts
    )
    assert row["guide/expert_members"] == 2.0 and row["guide/share"] == pytest.approx(4 / 6)
    assert row["rollout/episodes"] == 4.0  # the policy's own; the experts' episodes are not rollouts
    assert row["rollout/success_unguided"] == 0.0
    assert row["update/skipped"] == 0.0 and row["groups/informative"] == 2.0 and row["groups/total"] == 4.0
    assert (
        row["decisions/trained"] == 24.0
    )  # 6 steps of each plain rollout and each expert; tied guided groups none
    assert row["choices/recorded_gap"] < 1e-5  # the policy's own decisions: recorded == recomputed
