"""`collect` with the openai policy against a local OpenAI-compatible server that fails a share of
requests with 429/500 and answers slowly: every episode is still recorded, actions come from the server."""

from __future__ import annotations

import hashlib
import re

import pytest
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


def _guided_server_pick(srv, mode: str):
    """The server's side of guided choice: an answer drawn from the request's own choice list (acting
    on the object first), as vLLM's guided decoding or a JSON-schema enum would force it to be."""
    import json

    def answer(messages) -> str:
        body = srv[0].calls[-1]["body"]  # concurrency 1: the request being answered
        if mode == "vllm":
            choices = body["guided_choice"]
        else:
            choices = body["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"]
        best = next((a for p in PRIORITY for a in choices if a.startswith(p)), choices[0])
        return best if mode == "vllm" else json.dumps({"action": best})

    return answer


@pytest.mark.parametrize("mode", ["vllm", "json_schema"])
def test_a_served_policy_is_constrained_to_the_admissible_actions_by_its_server(tmp_path, mode):
    """The CPU default (the quick preset: whole-action choice) with a served policy: the admissible
    actions go to the server as vLLM's guided_choice or a JSON-schema enum, and every action taken is one."""
    from krill.config import load_config

    ref: list = []
    with FakeOpenAIServer(_guided_server_pick(ref, mode)) as srv:
        ref.append(srv)
        cfg = load_config(preset="quick").override(
            {"model.policy.model": "fake", "model.policy.api_base": srv.base_url, "model.policy.concurrency": 1,
             "model.policy.guided_choice": mode}
        )  # fmt: skip
        assert cfg.agent.constrain_actions
        out = tmp_path / "g.jsonl"
        collect(cfg, CollectOptions(episodes=2, policy="openai", out=str(out)),
                pool=EnvListPool([KitchenEnv() for _ in range(2)]))  # fmt: skip
        bodies = [c["body"] for c in srv.calls if c["path"] == "chat"]
    steps = [s for t in load_trajectories(out) for s in t.steps]
    assert steps and all(s.valid for s in steps)
    assert any(
        s.action.startswith(("take ", "heat ", "put ")) for s in steps
    )  # the server's choices were used
    if mode == "vllm":
        assert all(
            "look" in b["guided_choice"] and b["structured_outputs"]["choice"] == b["guided_choice"]
            for b in bodies
        )
    else:
        assert all("stop" not in b and b["response_format"]["json_schema"]["strict"] for b in bodies)


def test_a_served_policy_without_guided_choice_turns_the_option_off_with_a_notice(tmp_path, caplog):
    from krill.config import load_config

    # the quick preset's compact prompt lists no admissible actions: this server answers one plain action
    with FakeOpenAIServer(lambda messages: "go to microwave 1") as srv:
        cfg = load_config(preset="quick").override(
            {"model.policy.model": "fake", "model.policy.api_base": srv.base_url}
        )
        out = tmp_path / "n.jsonl"
        collect(
            cfg, CollectOptions(episodes=1, policy="openai", out=str(out)), pool=EnvListPool([KitchenEnv()])
        )
        bodies = [c["body"] for c in srv.calls if c["path"] == "chat"]
    assert "model.policy.guided_choice" in caplog.text
    assert bodies and all("guided_choice" not in b and "response_format" not in b for b in bodies)
    steps = load_trajectories(out)[0].steps  # the episode ran on the server's answers, free text
    assert steps and all(
        s.model_extra.get("error") is None and s.action == "go to microwave 1" for s in steps
    )
