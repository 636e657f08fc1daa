"""OpenAI-compatible policy, teacher client and embedder against the local fake server with faults."""

from __future__ import annotations

import asyncio
import json
import socket

import numpy as np
import pytest

from krill.config import EmbeddingConfig, PolicyConfig, TeacherConfig
from krill.errors import KrillError
from krill.models.embedder import CachedEmbedder
from krill.models.openai_api import OpenAIChatClient, OpenAIEmbedder, OpenAIPolicy, restore_stop
from krill.testing import FakeOpenAIServer

SECRET = "sk-test-SECRET-1234567890"
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "steps": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "steps"],
}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("KRILL_RETRY_INITIAL", "0.02")
    monkeypatch.setenv("KRILL_TEST_KEY", SECRET)


def act(messages):
    """A deterministic 'model': acts on the task named in the last user message."""
    task = messages[-1]["content"]
    return f"<think>the task is {task}</think><action>go to {task}</action>\nignored tail"


def policy_cfg(srv, **kw) -> PolicyConfig:
    return PolicyConfig(
        backend="openai", model="fake", api_base=srv.base_url, api_key_env="KRILL_TEST_KEY", **kw
    )


def teacher_cfg(srv, **kw) -> TeacherConfig:
    return TeacherConfig(
        backend="llm", model="fake", api_base=srv.base_url, api_key_env="KRILL_TEST_KEY", **kw
    )


def msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_policy_survives_429_500_timeouts_and_resets():
    faults = ["429", "500", "timeout", "reset", "empty", "nonjson", "badshape", "trickle"]
    with FakeOpenAIServer(act, faults=faults, fail_rate=0.25, delay=0.02, hang_s=5, api_key=SECRET) as srv:
        pol = OpenAIPolicy(policy_cfg(srv, timeout=0.5, max_retries=8, concurrency=4))
        tasks = [f"desk {i}" for i in range(16)]
        gens = pol.generate([msgs(t) for t in tasks], max_new_tokens=64, stop=["</action>"])
    assert [g.error for g in gens] == [None] * 16
    assert [g.text for g in gens] == [
        f"<think>the task is {t}</think><action>go to {t}</action>" for t in tasks
    ]
    assert all(g.response_tokens > 0 and g.prompt_tokens > 0 for g in gens)
    assert srv.stats["answered"] == 16 and sum(srv.stats["faults"].values()) >= len(faults)
    assert pol.stats.retries == srv.stats["requests"] - 16 and pol.stats.failures == 0
    assert all(c["auth"] == f"Bearer {SECRET}" for c in srv.calls)


def test_policy_failure_is_per_request_and_redacted():
    with FakeOpenAIServer(act, faults=["500", "500"]) as srv:
        pol = OpenAIPolicy(policy_cfg(srv, max_retries=1, concurrency=1))
        gens = pol.generate([msgs("a"), msgs("b")], max_new_tokens=32)
    assert gens[0].text == "" and "HTTP 500" in gens[0].error and gens[0].finish_reason == "error"
    assert gens[1].error is None and "go to b" in gens[1].text
    assert SECRET not in gens[0].error and pol.stats.failures == 1


def test_restore_stop_matches_local_convention():
    assert (
        restore_stop("<action>open fridge 1", ["</action>", "\n"], "stop") == "<action>open fridge 1</action>"
    )
    assert restore_stop("go to desk 1\nmore", ["\n"], "stop") == "go to desk 1\n"
    assert restore_stop("<action>open", ["</action>"], "length") == "<action>open"


def test_generate_works_inside_a_running_event_loop():
    with FakeOpenAIServer(act) as srv:
        pol = OpenAIPolicy(policy_cfg(srv))

        async def caller():
            return pol.generate([msgs("x")], max_new_tokens=32, stop=["</action>"])

        assert asyncio.run(caller())[0].text.endswith("<action>go to x</action>")


def skill_answer(messages):
    """Valid JSON (fenced) for 'good' prompts; prose for 'bad'; wrong shape first, then fixed, for 'fix'."""
    first = messages[0]["content"]
    if "bad" in first:
        return "I think the agent should look around more."
    if "fix" in first and len(messages) == 1:
        return json.dumps({"name": "x", "steps": "not a list"})
    return "```json\n" + json.dumps({"name": first, "steps": ["look", "act"]}) + "\n```"


def test_json_reask_once_then_none(tmp_path):
    with FakeOpenAIServer(skill_answer, faults=["429"]) as srv:
        client = OpenAIChatClient(teacher_cfg(srv), cache_path=tmp_path / "cache.jsonl")
        out = client.complete_json([msgs("good"), msgs("bad"), msgs("fix")], schema=SCHEMA)
    assert out[0] == {"name": "good", "steps": ["look", "act"]}
    assert out[1] is None and out[2] == {"name": "fix", "steps": ["look", "act"]}
    assert client.stats.reasks == 2 and client.stats.invalid == 1 and client.stats.retries == 1
    reasks = [c["body"]["messages"] for c in srv.calls if len(c["body"]["messages"]) == 3]
    assert len(reasks) == 2 and any("$.steps: expected array" in m[-1]["content"] for m in reasks)
    assert srv.stats["answered"] == 5  # good, bad, bad re-ask, fix, fix re-ask


def test_response_cache_resumes_without_reasking(tmp_path):
    cache = tmp_path / "cache.jsonl"
    prompts = [msgs(f"good {i}") for i in range(5)]
    with FakeOpenAIServer(skill_answer) as srv:
        first = OpenAIChatClient(teacher_cfg(srv), cache_path=cache).complete_json(prompts[:3], schema=SCHEMA)
    with open(cache, "a", encoding="utf-8") as fh:
        fh.write('{"key": "torn')  # a run killed mid-append
    with FakeOpenAIServer(skill_answer) as srv:
        client = OpenAIChatClient(teacher_cfg(srv), cache_path=cache)
        second = client.complete_json(prompts, schema=SCHEMA)
    assert second[:3] == first and second[3]["name"] == "good 3"
    assert client.stats.cache_hits == 3 and srv.stats["requests"] == 2
    assert cache.read_text().endswith("\n") and len(cache.read_text().splitlines()) == 5


def test_missing_key_for_remote_url(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cfg = TeacherConfig(
        backend="llm", model="o3", api_base="https://api.example.com/v1", api_key_env="NO_SUCH_KEY_VAR"
    )
    with pytest.raises(KrillError, match="set the environment variable NO_SUCH_KEY_VAR"):
        OpenAIChatClient(cfg)


def test_unreachable_and_rejected_key_errors_hide_the_key():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = PolicyConfig(
        backend="openai", model="m", api_base=f"http://127.0.0.1:{port}/v1", api_key_env="KRILL_TEST_KEY"
    )
    with pytest.raises(KrillError, match="cannot reach") as err:
        OpenAIPolicy(cfg)
    assert SECRET not in str(err.value) and "model.policy.api_base" in str(err.value)
    with FakeOpenAIServer(act, api_key="the-right-key") as srv:
        with pytest.raises(KrillError, match="rejected the API key") as err:
            OpenAIChatClient(teacher_cfg(srv))
        assert SECRET not in str(err.value)
        pol = OpenAIPolicy(policy_cfg(srv), check=False)
        gen = pol.generate([msgs("a")], max_new_tokens=8)[0]
    assert "HTTP 401" in gen.error and SECRET not in gen.error


def test_openai_embedder_batches_retries_and_caches(tmp_path):
    cfg_kw = dict(backend="openai", model="fake-emb", api_key_env="KRILL_TEST_KEY", batch_size=2)
    with FakeOpenAIServer(act, faults=["500", None, "reset"]) as srv:
        emb = OpenAIEmbedder(EmbeddingConfig(api_base=srv.base_url, **cfg_kw))
        cached = CachedEmbedder(emb, tmp_path)
        v = cached.embed(["heat a potato", "heat the potato", "buy shoes"])
        again = cached.embed(["buy shoes"])
    assert v.shape == (3, 64) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] and np.array_equal(again[0], v[2])
    assert srv.stats["answered"] == 2 and emb.stats.retries == 2 and cached.hits == 1


def test_repeated_prompt_in_one_batch_is_asked_once():
    with FakeOpenAIServer(skill_answer) as srv:
        client = OpenAIChatClient(teacher_cfg(srv))
        out = client.complete_json([msgs("good"), msgs("good"), msgs("good 2")], schema=SCHEMA)
    assert out[0] == out[1] == {"name": "good", "steps": ["look", "act"]} and out[2]["name"] == "good 2"
    assert srv.stats["requests"] == 2


def test_cached_answer_that_fails_a_new_schema_is_asked_again(tmp_path):
    cache = tmp_path / "cache.jsonl"
    strict = {**SCHEMA, "required": ["name", "steps", "why"]}
    with FakeOpenAIServer(skill_answer) as srv:
        OpenAIChatClient(teacher_cfg(srv), cache_path=cache).complete_json([msgs("good")], schema=SCHEMA)
        client = OpenAIChatClient(teacher_cfg(srv), cache_path=cache)
        assert client.complete_json([msgs("good")], schema=strict) == [None]  # the fake never gives "why"
    assert client.stats.cache_hits == 0 and client.stats.invalid == 1
