"""The embedded SmolLM2-135M-Instruct: GGUF from the package → safetensors in the cache once → answers."""

from __future__ import annotations

import time

import pytest

from krill.models import loading
from krill.models.local import LocalPolicy
from krill.testing.scoring import teacher_forced_logprobs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    cache = tmp_path_factory.mktemp("krill-cache")
    t0 = time.perf_counter()
    pol = LocalPolicy("smollm2", device="cpu", cache_dir=cache)
    print(f"smollm2 convert+load: {time.perf_counter() - t0:.1f} s")
    return pol, cache


def test_converted_once_then_reused(smol, monkeypatch):
    _, cache = smol
    folder = cache / "models" / loading.SMOLLM2_DIRNAME
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folders left

    def no_gguf():
        raise AssertionError("the GGUF must not be read again")

    monkeypatch.setattr(loading, "smollm2_gguf_path", no_gguf)
    t0 = time.perf_counter()
    again = LocalPolicy("smollm2", device="cpu", cache_dir=cache)
    assert time.perf_counter() - t0 < 20 and again.tokenizer.padding_side == "left"


def test_answers_a_chat_prompt(smol):
    pol, _ = smol
    gens = pol.generate(
        [
            [{"role": "user", "content": "What is the capital of France?"}],
            [{"role": "user", "content": "Say hello."}],
        ],
        max_new_tokens=16,
        want_logprobs=True,
    )
    assert "Paris" in gens[0].text
    assert gens[0].prompt_text.startswith("<|im_start|>system\n")
    assert gens[0].finish_reason == "stop" and gens[0].token_ids[-1] == pol.tokenizer.eos_token_id
    scored = teacher_forced_logprobs(pol, [g.prompt_text for g in gens], [g.token_ids for g in gens])
    for g, s in zip(gens, scored, strict=True):
        assert s == pytest.approx(g.logprobs, abs=2e-3)


def test_batched_equals_single_on_smollm2(smol):
    pol, _ = smol
    prompts = [
        [{"role": "user", "content": "Name a fruit."}],
        [
            {
                "role": "user",
                "content": "You are in a kitchen. Your task is to: heat some egg and put it in the fridge. "
                "Reply with one action, like: go to fridge 1",
            }
        ],
    ]
    batch = pol.generate(prompts, max_new_tokens=12, stop=["\n"])
    single = [pol.generate([p], max_new_tokens=12, stop=["\n"])[0] for p in prompts]
    assert [g.text for g in batch] == [g.text for g in single]
