"""The GRPO loop end to end on the tiny model: logs, checkpoints, the evolve hook, resume == uninterrupted.

The env is a small in-test env whose reward depends on what the model says (the parity of each
action's length), so even a random tiny model gets groups with different returns and real updates.
"""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
from agent_fakes import EnvListPool  # noqa: E402

from krill.config import load_config
from krill.errors import KrillError
from krill.io import read_json, read_jsonl
from krill.schema import Skill, SkillBank
from krill.train.rl import run_rl


class ParityEnv:
    """Two steps; reward 5 per action of even length at the end (10·won when both are even)."""

    name = "parity"
    max_steps = 2

    def task_ids(self):
        return [f"t{i}" for i in range(6)]

    def reset(self, task_id=None):
        self.tid, self.t, self.even = task_id or "t0", 0, 0
        return "Say a word with an even number of letters.", self._info(False)

    def step(self, action):
        self.t += 1
        self.even += len(action) % 2 == 0
        done = self.t >= 2
        return "ok", (5.0 * self.even if done else 0.0), done, self._info(done and self.even == 2)

    def _info(self, won):
        return {"task_id": self.tid, "task_description": f"say even words ({self.tid})", "task_category": "Pick",
                "admissible_actions": [], "won": won, "valid": True}  # fmt: skip

    def expert_action(self):
        return "ab"

    def close(self):
        pass


def _bank():
    return SkillBank(
        general_skills=[
            Skill(name="Be Even", principle="Prefer words of even length.", when_to_apply="Always.")
        ]
    )


@pytest.fixture
def rl_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    monkeypatch.setenv("KRILL_CACHE", str(tmp_path / "cache"))


def _pool():
    return EnvListPool([ParityEnv() for _ in range(6)])  # one slot per rollout of an iteration


def _cfg(iterations, **extra):
    sets = [
        "model.policy.device=cpu", f"rl.iterations={iterations}", "rl.group_size=3", "rl.batch_size=6",
        "model.policy.max_new_tokens=6", "rl.learning_rate=0.02", "model.policy.batch_size=6", "rl.temperature=1.5",
        *[f"{k}={v}" for k, v in extra.items()],
    ]  # fmt: skip
    return load_config(preset="tiny", overrides=sets)


@pytest.mark.parametrize("context", ["window", "conversation"])
def test_resume_matches_uninterrupted_run(rl_env, tmp_path, context):
    mode = {"agent.context": context}
    full = run_rl(_cfg(3, **mode), _bank(), tmp_path / "full", pool=_pool())
    run_rl(
        _cfg(2, **mode), _bank(), tmp_path / "cut", pool=_pool()
    )  # "killed" after iteration 2's checkpoint
    resumed = run_rl(_cfg(3, **mode), _bank(), tmp_path / "cut", resume=True, pool=_pool())
    assert [m["iteration"] for m in read_jsonl(tmp_path / "cut" / "metrics.jsonl")] == [1, 2, 3]
    assert any(m["update/skipped"] == 0.0 for m in full.metrics), "the test needs at least one real update"
    keys = ("rollout/reward", "losses/loss", "losses/kl", "adv/std", "groups/zero_variance")
    a, b = full.metrics[-1], resumed.metrics[-1]
    assert {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys}
    wa = load_file(tmp_path / "full" / "adapter" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "cut" / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_logs_checkpoints_and_evolve_hook(rl_env, tmp_path):
    calls = []

    def hook(iteration, policy, bank, recent=None):
        calls.append((iteration, len(recent or [])))
        bank.add(Skill(name=f"Evolved {iteration}", principle="Say two letters.", when_to_apply="Always."))
        return bank

    out = tmp_path / "rl"
    res = run_rl(
        _cfg(2, **{"evolution.validation_interval": 2}), _bank(), out, evolve_hook=hook, pool=_pool()
    )
    assert calls == [(2, 6)]
    rows = list(read_jsonl(out / "metrics.jsonl"))
    assert [r["iteration"] for r in rows] == [1, 2]
    for key in ("rollout/reward", "charts/success_rate", "charts/success_rate/Pick", "groups/zero_variance",
                "adv/std", "tokens/prompt", "time/iteration_s"):  # fmt: skip
        assert key in rows[0], key
    assert any((out / "tb").iterdir())
    state = read_json(
        out / "checkpoints" / read_json(out / "checkpoints" / "latest.json")["dir"] / "state.json"
    )
    assert state["iteration"] == 2 and "config" in state
    assert "Evolved 2" in open(state["bank_path"]).read()
    assert "Evolved 2" in (res.bank_path).read_text()
    assert (res.adapter_dir / "adapter_model.safetensors").exists()


def test_rl_tasks_limits_training_to_the_listed_tasks(rl_env, tmp_path, monkeypatch):
    seen = []
    reset = ParityEnv.reset
    monkeypatch.setattr(
        ParityEnv, "reset", lambda self, task_id=None: (seen.append(task_id), reset(self, task_id))[1]
    )
    run_rl(_cfg(1, **{"rl.tasks": "[t4, t5]"}), _bank(), tmp_path / "rl", pool=_pool())
    assert seen and set(seen) == {"t4", "t5"}
    with pytest.raises(KrillError, match=r"^rl.tasks\[1\]: 't9' is not a task of the \w+ train split$"):
        run_rl(_cfg(1, **{"rl.tasks": "[t4, t9]"}), _bank(), tmp_path / "bad", pool=_pool())


def test_gigpo_runs_the_real_update_and_omega_zero_matches_grpo(rl_env, tmp_path):
    """rl.advantage=gigpo through the whole loop: a real update; with ω = 0 the weights equal GRPO's."""
    runs = {}
    for name, extra in {"grpo": {}, "gigpo0": {"rl.advantage": "gigpo", "rl.step_advantage_weight": 0.0},
                        "gigpo": {"rl.advantage": "gigpo"}}.items():  # fmt: skip
        res = run_rl(_cfg(1, **extra), _bank(), tmp_path / name, pool=_pool())
        assert res.updates == 1, name
        runs[name] = load_file(tmp_path / name / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(runs["grpo"][k], runs["gigpo0"][k]) for k in runs["grpo"])
    # ParityEnv's first observation is shared by every rollout of a group: A_step moves the update
    assert any(not torch.equal(runs["grpo"][k], runs["gigpo"][k]) for k in runs["grpo"])


def test_curriculum_withdraws_the_skills_from_later_iterations(rl_env, tmp_path):
    res = run_rl(_cfg(2, **{"skills.curriculum": "linear"}), _bank(), tmp_path / "rl", pool=_pool())
    first, last = (m["tokens/prompt"] for m in res.metrics)
    plain = run_rl(_cfg(2), _bank(), tmp_path / "plain", pool=_pool()).metrics
    assert first == plain[0]["tokens/prompt"]  # iteration 1 of 2 keeps half of one skill: rounded up, it
    assert last < plain[1]["tokens/prompt"]  # the last shows none: the same prompts, shorter
