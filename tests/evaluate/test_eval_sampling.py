"""Each phase decodes with its own settings, given to the actor explicitly; no call changes the config.

The bug this guards: `krill eval --set eval.temperature=0.7` sampled at `rl.temperature` with up to
`rl.max_response_length` tokens (now one key, `model.policy.max_new_tokens`) while the result recorded 0.7, and eval trajectories on
`valid_unseen` were labelled "train".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
from agent_fakes import EnvListPool, KitchenEnv  # noqa: E402

from krill.agent.collect import CollectOptions, collect  # noqa: E402
from krill.config import KrillConfig, Sampling  # noqa: E402
from krill.evaluate.eval import evaluate  # noqa: E402
from krill.formats.trajectories import load_trajectories  # noqa: E402
from krill.testing.openai_server import FakeOpenAIServer  # noqa: E402


def _cfg(base_url: str) -> KrillConfig:
    return KrillConfig().override(
        {
            "model.policy.model": "fake",
            "model.policy.api_base": base_url,  # backend stays local: the openai policy kind picks the server
            "model.policy.max_new_tokens": 24,
            "model.policy.top_p": 0.9,
            "model.policy.temperature": 0.0,
            "eval.temperature": 0.7,
            "rl.temperature": 1.3,
        }
    )


def _chat_bodies(srv: FakeOpenAIServer) -> list[dict]:
    return [c["body"] for c in srv.calls if c["path"] == "chat"]


def test_eval_samples_at_its_own_temperature_and_length_and_records_them(tmp_path):
    with FakeOpenAIServer(lambda messages: "look") as srv:
        cfg = _cfg(srv.base_url)
        before = cfg.model_dump()
        out = tmp_path / "eval.json"
        evaluate(cfg, policy="openai", bank=None, out=out, split="valid_unseen", episodes=3,
                 pool=EnvListPool([KitchenEnv() for _ in range(2)]))  # fmt: skip
        bodies = _chat_bodies(srv)
    assert bodies and {(b["temperature"], b["max_tokens"], b["top_p"]) for b in bodies} == {(0.7, 24, 0.9)}
    result = json.loads(out.read_text())
    assert (result["temperature"], result["max_new_tokens"], result["top_p"]) == (0.7, 24, 0.9)
    trajs = load_trajectories(tmp_path / "eval.trajectories.jsonl")
    assert len(trajs) == 3 and {t.metadata["split"] for t in trajs} == {"valid_unseen"}
    assert cfg.model_dump() == before


def test_collect_decodes_at_the_policy_settings_and_leaves_the_config_alone(tmp_path):
    with FakeOpenAIServer(lambda messages: "look") as srv:
        cfg = _cfg(srv.base_url)
        before = cfg.model_dump()
        collect(cfg, CollectOptions(episodes=2, policy="openai", out=str(tmp_path / "c.jsonl")),
                pool=EnvListPool([KitchenEnv()]))  # fmt: skip
        bodies = _chat_bodies(srv)
    assert bodies and {(b["temperature"], b["max_tokens"]) for b in bodies} == {(0.0, 24)}
    assert cfg.model_dump() == before and cfg.model.policy.backend == "local"


@pytest.mark.parametrize(
    ("phase", "want"),
    [
        ("collect", Sampling(0.0, 0.9, 24)),
        ("eval", Sampling(0.7, 0.9, 24)),
        ("validation", Sampling(0.0, 0.9, 24)),
        ("rollout", Sampling(1.3, 0.9, 24)),
    ],
)
def test_every_phase_reads_its_own_sampling_settings(phase, want):
    assert _cfg("http://127.0.0.1:9/v1").sampling(phase) == want


def test_override_returns_a_validated_copy():
    cfg = KrillConfig()
    other = cfg.override({"rl.group_size": 4})
    assert other.rl.group_size == 4 and cfg.rl.group_size == 8
    with pytest.raises(Exception, match="group_size"):
        cfg.override({"rl.group_size": 0})
