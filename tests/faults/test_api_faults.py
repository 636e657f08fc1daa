"""Teacher and policy API faults from a local OpenAI-compatible server (krill.testing.openai_server).

429 with Retry-After, 500/503, timeouts, trickling bodies, connection resets, empty bodies, non-JSON,
JSON of the wrong shape, prose instead of JSON and endless answers. Distillation with the LLM teacher
and collection with the `openai` policy must complete, count the faults, and let nothing invalid into
the bank or the trajectories.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fault_helpers import bank_without_timestamps, check_bank, teacher_answer, unparseable_files

from krill.config import load_config
from krill.formats.trajectories import load_trajectories
from krill.models.embedder import HashEmbedder
from krill.skills.distill import distill_file
from krill.testing.openai_server import FAULT_KINDS, FakeOpenAIServer

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "krill" / "data" / "example_trajectories.jsonl"
PROMPTS = 7  # one prompt per example trajectory (trajectories_per_call=1)
SLOW = {"timeout", "trickle"}  # each costs one client timeout


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("KRILL_RETRY_INITIAL", "0.01")  # first backoff step; Retry-After is 0.1 s


def _teacher_cfg(srv, max_retries: int = 4):
    return load_config(overrides=[
        "model.teacher.backend=llm", "model.teacher.model=fake", f"model.teacher.api_base={srv.base_url}",
        "model.teacher.timeout=1", f"model.teacher.max_retries={max_retries}",
        "distill.trajectories_per_call=1", "distill.concurrency=1",
    ])  # fmt: skip


def _distill(srv, out: Path, max_retries: int = 4):
    return distill_file(EXAMPLES, out, _teacher_cfg(srv, max_retries), embedder=HashEmbedder(64))


@pytest.fixture(scope="module")
def clean_bank(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("clean") / "bank.json"
    with FakeOpenAIServer(teacher_answer) as srv:
        _, rep = _distill(srv, out)
    assert rep.teacher_calls == PROMPTS and rep.api_retries == 0
    return bank_without_timestamps(check_bank(out))


CONTENT = {"garbage", "long"}  # delivered but unusable answers: re-asked once with the error


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_teacher_fault_is_retried_and_the_bank_is_unchanged(kind, tmp_path, clean_bank, faults):
    """Faults of one kind on the first prompt (two for transport faults: the ask and its first retry;
    one for content faults, whose re-ask must then succeed), then a good server."""
    out = tmp_path / "bank.json"
    n = 1 if kind in CONTENT else 2
    with FakeOpenAIServer(teacher_answer, faults=[kind] * n, retry_after=0.1, hang_s=5) as srv:
        _, rep = _distill(srv, out)
        seen = srv.stats["faults"][kind]
    faults.inject(f"teacher API: {kind}", seen)
    assert seen == n
    assert bank_without_timestamps(check_bank(out)) == clean_bank  # the faults cost nothing
    assert rep.api_retries == (0 if kind in CONTENT else 2) and rep.api_failures == 0
    assert rep.skipped_answers == 0 and rep.teacher_calls == PROMPTS + n


def test_teacher_unusable_answer_twice_is_skipped_not_stored(tmp_path, faults):
    """Prose, then an endless answer to the re-ask: that prompt is skipped with a warning."""
    with FakeOpenAIServer(teacher_answer, faults=["garbage", "long"], long_chars=200_000) as srv:
        bank, rep = _distill(srv, tmp_path / "bank.json")
    faults.inject("teacher API: garbage", 1)
    faults.inject("teacher API: long", 1)
    assert rep.skipped_answers == 1 and any("skipped" in w for w in rep.warnings)
    check_bank(tmp_path / "bank.json")
    assert len(bank) > 0


def test_teacher_request_failing_for_good_is_skipped_and_counted(tmp_path, faults):
    """Retries exhausted on one prompt: its answer is skipped with a warning, the rest goes on."""
    out = tmp_path / "bank.json"
    with FakeOpenAIServer(teacher_answer, faults=["500", "503", "429"], retry_after=0.1) as srv:
        bank, rep = _distill(srv, out, max_retries=2)
    faults.inject("teacher API: 500/503/429 (retries exhausted)", 3)
    assert rep.api_failures == 1 and rep.skipped_answers == 1 and rep.api_retries == 2
    assert any("skipped" in w for w in rep.warnings)
    assert ("API faults", "2 retried, 1 failed for good") in rep.rows()
    check_bank(out)
    assert len(bank) > 0


def test_teacher_under_a_storm_of_random_faults(tmp_path, faults):
    """30 % of requests fail with any kind but the slow ones: the run completes, the bank validates."""
    kinds = tuple(k for k in FAULT_KINDS if k not in SLOW)
    with FakeOpenAIServer(teacher_answer, fail_rate=0.3, fail_kinds=kinds, retry_after=0.1, seed=7) as srv:
        _, rep = _distill(srv, tmp_path / "bank.json", max_retries=8)
        seen = dict(srv.stats["faults"])
    for kind, n in seen.items():
        faults.inject(f"teacher API: {kind}", n)
    assert sum(seen.values()) >= 3
    check_bank(tmp_path / "bank.json")
    assert rep.api_failures == 0 and rep.total_skills > 0


def test_teacher_answers_with_invalid_items_never_reach_the_bank(tmp_path, faults):
    """A reachable server whose JSON has the right shape but bad items: empty names, unknown categories,
    a giant principle, invented trajectory ids. Each item is dropped or capped, never stored as is."""

    def bad_teacher(messages):
        ok = json.loads(teacher_answer(messages))
        ok["skills"] += [
            {"name": "", "principle": "p", "when_to_apply": "w", "category": "Heat", "source_trajectory_ids": []},
            {"name": "x", "principle": "p", "when_to_apply": "w", "category": "Kitchen", "source_trajectory_ids": []},
            {"name": "Huge", "principle": "z" * 3000, "when_to_apply": "w", "category": "Heat",
             "source_trajectory_ids": ["not-a-real-id"]},
        ]  # fmt: skip
        return json.dumps(ok)

    with FakeOpenAIServer(bad_teacher) as srv:
        _, rep = _distill(srv, tmp_path / "bank.json")
    faults.inject("teacher API: invalid items in a valid answer", 3 * PROMPTS)
    bank = check_bank(tmp_path / "bank.json")  # names/principles non-empty and within the caps
    assert rep.dropped == 2 * PROMPTS and rep.skipped_answers == 0
    skills = bank["general_skills"] + [s for v in bank["task_specific_skills"].values() for s in v]
    names = [s["name"] for s in skills]
    assert "x" not in names and "" not in names
    (huge,) = [s for s in skills if s["name"] == "Huge"]
    ids = {json.loads(line)["id"] for line in EXAMPLES.read_text().splitlines()}
    assert len(huge["principle"]) <= 600 and {p["trajectory_id"] for p in huge["provenance"]} <= ids


# -- the openai policy ---------------------------------------------------------------------------------
def first_admissible(messages) -> str:
    """A real (rule-based) policy from the prompt: the first admissible action that is not `look`."""
    text = messages[-1]["content"]
    tail = re.split(r"admissible actions", text, flags=re.I)[-1]
    acts = [a.strip() for a in re.findall(r"^\s*[-*\d.]+\s*(.+)$", tail, re.M)]
    acts = [a for a in acts if a and a not in ("look", "inventory")] or ["look"]
    return f"<action>{acts[len(text) % len(acts)]}</action>"


def test_openai_policy_collect_completes_through_every_fault_kind(tmp_path, monkeypatch, faults):
    """Every fault kind once at the start, then 20 % random faults; one request exhausts its retries."""
    from krill.agent.collect import CollectOptions, collect

    monkeypatch.setenv("KRILL_PRESET", "tiny")
    monkeypatch.setenv("KRILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    script = ["500", "500", "500", *FAULT_KINDS]  # 3 × 500 with max_retries=2: the first step fails for good
    with FakeOpenAIServer(first_admissible, faults=script, fail_rate=0.2, fail_kinds=("429", "500", "reset", "empty"),
                          retry_after=0.1, hang_s=5, seed=1) as srv:  # fmt: skip
        cfg = load_config(overrides=[
            "model.policy.backend=openai", "model.policy.model=fake", f"model.policy.api_base={srv.base_url}",
            "model.policy.timeout=1", "model.policy.max_retries=2", "model.policy.concurrency=1",
            "model.policy.batch_size=1",
            "agent.constrain_actions=false",  # the tiny preset constrains its local model; a server cannot
        ])  # fmt: skip
        out = tmp_path / "policy.jsonl"
        res = collect(cfg, CollectOptions(episodes=3, policy="openai", out=str(out), max_steps=6))
        seen = dict(srv.stats["faults"])
    for kind, n in seen.items():
        faults.inject(f"policy API: {kind}", n)
    assert set(FAULT_KINDS) <= set(seen)
    trajs = load_trajectories(out)
    assert res.ran == 3 and sorted(t.metadata["episode_index"] for t in trajs) == [0, 1, 2]
    assert not unparseable_files(out)
    steps = [s for t in trajs for s in t.steps]
    errors = [s.model_extra.get("error") for s in steps if s.model_extra.get("error")]
    assert errors and errors[0].startswith("HTTP 500")  # failed for good: recorded on the step, run went on
    long_ = [s for s in steps if len(s.model_extra.get("response") or "") > 2000]
    assert not long_, "an endless answer was stored uncut"
