"""`collect` with the openai policy against a local OpenAI-compatible server that fails a share of
requests with 429/500 and answers slowly: every episode is still recorded, actions come from the server."""

from __future__ import annotations

import hashlib
import re

from agent_fakes import EnvListPool, KitchenEnv

from krill.agent.collect import CollectOptions, collect
from krill.config import KrillConfig
from krill.formats.trajectories import load_trajectories
from krill.testing.openai_server import FakeOpenAIServer

PRIORITY = ("put ", "heat ", "take ")


def kitchen_agent(messages) -> str:
    """A real (rule-based) policy computed from the prompt: act on the object when possible,
    else go to the place the task needs next, judged from the current observation."""
    user = messages[-1]["content"]
    acts = re.findall(r"^- (.+)$", user.split("## Admissible Actions", 1)[-1], re.M)
    current = user.split("## Current Observation", 1)[-1].split("## Admissible Actions")[0]
    if "heat the" in current and not any(a.startswith("put ") for a in acts):
        return "<action>go to fridge 1</action>"
    for p in PRIORITY:
        for a in acts:
            if a.startswith(p):
                return f"<action>{a}</action>"
    if "pick up" in current:
        return "<action>go to microwave 1</action>"
    gos = [a for a in acts if a.startswith("go to")]
    return f"<action>{gos[int(hashlib.md5(user.encode()).hexdigest(), 16) % len(gos)]}</action>"


def test_openai_collect_survives_429_500_and_slow_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("KRILL_RETRY_INITIAL", "0.01")  # short backoff so the test is quick
    with FakeOpenAIServer(
        kitchen_agent, fail_rate=0.3, fail_kinds=("429", "500"), delay=0.05, retry_after=0.01, seed=3
    ) as srv:
        cfg = KrillConfig().override(
            {"model.policy.model": "fake", "model.policy.api_base": srv.base_url, "model.policy.timeout": 5.0,
             "model.policy.max_retries": 8, "model.policy.concurrency": 4}
        )  # fmt: skip
        out = tmp_path / "oa.jsonl"
        res = collect(
            cfg,
            CollectOptions(episodes=6, policy="openai", out=str(out)),
            pool=EnvListPool([KitchenEnv() for _ in range(3)]),
        )
        stats = srv.stats
    trajs = load_trajectories(out)
    assert len(trajs) == 6 and sorted(t.metadata["episode_index"] for t in trajs) == list(range(6))
    assert stats["faults"]["429"] + stats["faults"]["500"] > 0  # faults really happened
    assert res.policy == "openai:fake"
    steps = [s for t in trajs for s in t.steps]
    assert all(s.model_extra.get("error") is None for s in steps)  # every fault was retried away
    assert all(s.model_extra["response"].startswith("<action>") for s in steps)
    assert sum(t.success for t in trajs) >= 4  # the server's policy is good; successes recorded
