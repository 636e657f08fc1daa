"""`collect` core and CLI: streaming writes, kill-like interruption + resume, summary, real WebShop runs."""

from __future__ import annotations

import json

import pytest
from agent_fakes import EnvListPool, KitchenEnv
from typer.testing import CliRunner

from krill.agent.actors import ExpertActor, RandomActor, make_actor
from krill.agent.collect import CollectOptions, collect, summarize, task_plan
from krill.cli.main import app
from krill.config import KrillConfig
from krill.errors import KrillError
from krill.formats.trajectories import load_trajectories


class Interrupt(BaseException):
    """Stands in for Ctrl-C / a kill: not an Exception, so nothing swallows it."""


class DyingActor:
    """Acts like `inner` but dies on the n-th call (mid-run, with episodes in flight)."""

    def __init__(self, inner, die_at: int):
        self.inner, self.die_at, self.calls, self.name = inner, die_at, 0, inner.name

    def act(self, episodes, pool):
        self.calls += 1
        if self.calls == self.die_at:
            raise Interrupt()
        return self.inner.act(episodes, pool)


def pool(n=3):
    return EnvListPool([KitchenEnv() for _ in range(n)])


def strip(trajs):
    return [t.model_dump(exclude={"id"}) for t in trajs]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_interrupted_collect_resumes_only_the_rest(tmp_path, suffix):
    cfg = KrillConfig()
    opts = CollectOptions(episodes=9, policy="random", out=str(tmp_path / f"full{suffix}"), seed=5)
    full = collect(cfg, opts, pool=pool())
    assert full.ran == 9 and len(load_trajectories(opts.out)) == 9

    out = tmp_path / f"cut{suffix}"
    cut = CollectOptions(episodes=9, policy="random", out=str(out), seed=5)
    with pytest.raises(Interrupt):
        collect(cfg, cut, pool=pool(), actor=DyingActor(make_actor("random", cfg, seed=5), die_at=13))
    log = out if suffix == ".jsonl" else tmp_path / f"cut{suffix}.partial.jsonl"
    assert not (suffix == ".json" and out.exists())  # the array is only written when complete
    lines = log.read_text().splitlines()
    assert 0 < len(lines) < 9
    with open(log, "a") as fh:  # a torn last line, as a kill mid-append leaves
        fh.write('{"id": "torn", "task_desc')

    cut.resume = True
    resumed = collect(cfg, cut, pool=pool())
    assert resumed.resumed == len(lines) and resumed.ran == 9 - len(lines)
    on_disk = sorted(load_trajectories(out), key=lambda t: t.metadata["episode_index"])
    assert [t.metadata["episode_index"] for t in on_disk] == list(range(9))
    assert strip(on_disk) == strip(sorted(full.trajectories, key=lambda t: t.metadata["episode_index"]))
    assert not (tmp_path / f"cut{suffix}.partial.jsonl").exists()


def test_resume_with_other_seed_is_refused(tmp_path):
    cfg, out = KrillConfig(), str(tmp_path / "t.jsonl")
    collect(cfg, CollectOptions(episodes=2, policy="expert", out=out, seed=1), pool=pool())
    with pytest.raises(KrillError, match="same --seed"):
        collect(cfg, CollectOptions(episodes=4, policy="expert", out=out, seed=2, resume=True), pool=pool())


def test_task_plan_and_summary():
    plan = task_plan(["a", "b", "c"], 7, seed=0)
    assert (
        plan[:3] == plan[3:6]
        and sorted(plan[:3]) == ["a", "b", "c"]
        and task_plan(["a", "b", "c"], 7, 0) == plan
    )
    from krill.agent.rollout import run_episodes

    trajs = run_episodes(ExpertActor(), pool(2), ["t0", "t1"]) + run_episodes(RandomActor(1), pool(1), ["t2"])
    rows = {r["category"]: r for r in summarize(trajs)}
    assert rows["Heat"]["episodes"] == 3 and rows["all"]["episodes"] == 3
    assert rows["Heat"]["success_rate"] == pytest.approx(sum(t.success for t in trajs) / 3)
    assert rows["Heat"]["mean_steps"] == pytest.approx(sum(len(t.steps) for t in trajs) / 3)


def test_cli_collect_webshop_expert_and_random(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ws.jsonl"
    args = ["--set", "env.webshop.num_products=200", "--set", "env.webshop.num_test_goals=20", "collect",
            "--env", "webshop", "--episodes", "4", "--out", str(out)]  # fmt: skip
    res = runner.invoke(app, [*args, "--policy", "expert"])
    assert res.exit_code == 0, res.output
    trajs = load_trajectories(out)
    assert len(trajs) == 4 and sum(t.success for t in trajs) >= 3
    assert trajs[0].metadata["environment"] == "webshop" and trajs[0].steps[0].action.startswith("search[")
    assert "success" in res.output and "wrote 4 trajectories" in res.output
    res = runner.invoke(app, [*args, "--policy", "random", "--seed", "1"])
    assert res.exit_code == 0, res.output
    rnd = load_trajectories(out)
    assert rnd[0].metadata["policy"] == "random" and sum(t.total_reward for t in rnd) < sum(
        t.total_reward for t in trajs
    )
    assert any(s.action.startswith("click[") for t in rnd for s in t.steps)


def test_cli_collect_bad_policy_message(tmp_path):
    res = CliRunner().invoke(
        app, ["collect", "--policy", "telepathy", "--episodes", "1", "--out", str(tmp_path / "x.jsonl")]
    )
    assert res.exit_code != 0
    assert "unknown policy 'telepathy'" in str(res.exception)


def test_cli_retrieve_json(tmp_path):
    from importlib import resources

    bank = str(resources.files("krill.data").joinpath("example_bank.json"))
    res = CliRunner(env={"KRILL_EMBEDDER": "hash"}).invoke(
        app,
        [
            "retrieve",
            "--bank",
            bank,
            "heat some potato and put it in the fridge",
            "--json",
            "--threshold",
            "-1",
            "--top-k",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["category"] == "Heat" and len(d["specific"]) == 1 and d["specific"][0]["category"] == "Heat"
    assert len(d["general"]) == 4 and "score" in d["specific"][0] and d["mistakes"]
