"""Embedders: HashEmbedder sanity, the on-disk cache, the embedded MiniLM, build_embedder selection."""

from __future__ import annotations

import numpy as np
import pytest

from krill.config import load_config
from krill.errors import KrillError
from krill.models import build_embedder
from krill.models.embedder import CachedEmbedder, HashEmbedder, LocalEmbedder


class CountingEmbedder:
    """A real embedder wrapped to count which texts reach it."""

    def __init__(self):
        self.inner, self.name, self.seen = HashEmbedder(32), "counting", []

    def embed(self, texts):
        self.seen.extend(texts)
        return self.inner.embed(texts)


def test_hash_embedder_similarity_and_norms():
    e = HashEmbedder()
    v = e.embed(
        [
            "heat some potato and put it in fridge",
            "heat a potato, then put it in the fridge",
            "buy red running shoes under 50 dollars",
            "",
        ]
    )
    assert v.shape == (4, 64) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-5)
    assert not v[3].any()  # no n-grams, no direction
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2]
    assert np.array_equal(e.embed(["x y"]), HashEmbedder().embed(["x y"]))  # deterministic across instances


def test_cache_embeds_each_text_once(tmp_path):
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, tmp_path)
    texts = ["a skill about heating", "a skill about cooling", "a skill about heating"]
    first = cached.embed(texts)
    assert sorted(inner.seen) == sorted(set(texts))  # the duplicate is embedded once
    assert np.array_equal(first, inner.inner.embed(texts))
    again = CachedEmbedder(CountingEmbedder(), tmp_path)  # a new process: same file, nothing re-embedded
    assert np.array_equal(again.embed(texts[::-1]), first[::-1])
    assert again.inner.seen == [] and again.hits == 3
    more = again.embed(["new text", texts[0]])
    assert again.inner.seen == ["new text"] and np.array_equal(more[1], first[0])


def test_build_embedder_hash_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    emb = build_embedder(load_config(overrides=[f"cache_dir={tmp_path}"]))
    assert isinstance(emb, HashEmbedder) and emb.embed(["x"]).shape == (1, 64)


def test_minilm_embeds_normalised_and_caches(monkeypatch, tmp_path):
    monkeypatch.delenv("KRILL_EMBEDDER", raising=False)
    emb = build_embedder(load_config(overrides=[f"cache_dir={tmp_path}"]))
    assert isinstance(emb, CachedEmbedder) and isinstance(emb.inner, LocalEmbedder)
    v = emb.embed(
        [
            "heat the potato and put it in the fridge",
            "warm a potato, place it in the refrigerator",
            "search for wireless headphones",
        ]
    )
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    emb2 = CachedEmbedder(LocalEmbedder(), tmp_path / "embeddings")
    assert np.allclose(emb2.embed(["search for wireless headphones"])[0], v[2])
    assert emb2.hits == 1 and emb2.inner._model is None  # a cache hit never loads the model


def test_missing_local_embedder_folder(tmp_path):
    with pytest.raises(KrillError, match="embedding model folder not found"):
        LocalEmbedder(str(tmp_path / "nope")).embed(["x"])
