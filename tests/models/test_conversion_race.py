"""Several processes converting the embedded model at once: one rename wins, nobody fails, no debris."""

from __future__ import annotations

import threading

import transformers

from krill.models import loading
from krill.models.tiny import build_tiny_model


def test_concurrent_conversions_agree(tmp_path, monkeypatch):
    n = 4
    barrier = threading.Barrier(n)
    monkeypatch.setattr(loading, "smollm2_gguf_path", lambda: tmp_path / "pkg" / loading.SMOLLM2_GGUF)

    def fake_model(path, **kw):  # stands in for the slow GGUF dequantization; all threads convert together
        assert kw.get("gguf_file") == loading.SMOLLM2_GGUF
        barrier.wait(timeout=30)
        return build_tiny_model(0)[0]

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_model)
    monkeypatch.setattr(
        transformers.AutoTokenizer, "from_pretrained", lambda path, **kw: build_tiny_model(0)[1]
    )
    results, errors = [], []

    def convert():
        try:
            results.append(loading.smollm2_dir(tmp_path / "cache"))
        except Exception as exc:  # collected: the test asserts there are none
            errors.append(exc)

    threads = [threading.Thread(target=convert) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    folder = results[0]
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [loading.SMOLLM2_DIRNAME]  # temp copies removed


def test_converted_folder_follows_the_umask(tmp_path, monkeypatch):
    """Issue 24: the cached model folder came out 0700 (mkdtemp), unreadable to a team or a server."""
    import os
    import stat

    monkeypatch.setattr(loading, "smollm2_gguf_path", lambda: tmp_path / "pkg" / loading.SMOLLM2_GGUF)
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM, "from_pretrained", lambda p, **kw: build_tiny_model(0)[0]
    )
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda p, **kw: build_tiny_model(0)[1])
    old = os.umask(0o022)
    try:
        folder = loading.smollm2_dir(tmp_path / "cache")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def _tokenizer_as_transformers_5_17_reads_the_gguf():
    tok = build_tiny_model(0)[1]
    tok.eos_token = "<|im_start|>"  # 5.17 takes the GGUF's BOS for EOS; the model config keeps <|im_end|>
    return tok


def test_converted_tokenizer_ends_turns_with_the_models_eos(tmp_path, monkeypatch):
    """The tokenizer's EOS ends SFT targets and constrained turns: it must be the token the model stops on,
    in a fresh conversion and in a cache converted before this was checked."""
    monkeypatch.setattr(loading, "smollm2_gguf_path", lambda: tmp_path / "pkg" / loading.SMOLLM2_GGUF)
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM, "from_pretrained", lambda p, **kw: build_tiny_model(0)[0]
    )
    monkeypatch.setattr(
        transformers.AutoTokenizer,
        "from_pretrained",
        lambda p, **kw: _tokenizer_as_transformers_5_17_reads_the_gguf(),
    )
    folder = loading.smollm2_dir(tmp_path / "cache")
    monkeypatch.undo()
    assert transformers.AutoTokenizer.from_pretrained(folder).eos_token == "<|im_end|>"

    _tokenizer_as_transformers_5_17_reads_the_gguf().save_pretrained(folder)  # an older, wrong conversion
    model, tok, _ = loading.load_causal_lm("smollm2", device="cpu", cache_dir=tmp_path / "cache")
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == model.config.eos_token_id
