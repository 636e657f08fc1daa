"""Model backends behind small protocols (see `base.py`), chosen in config:

- `build_policy(cfg)`: `model.policy.backend` local (transformers: 'smollm2', 'tiny', any local HF model)
  or openai (any OpenAI-compatible server).
- `build_embedder(cfg)`: sentence-transformers (embedded all-MiniLM-L6-v2) or an OpenAI-compatible
  `/embeddings`, cached on disk by (model, text). `KRILL_EMBEDDER=hash` (or model 'hash') selects the
  dependency-free `HashEmbedder` for fast tests.
- `build_chat_client(cfg)`: the LLM teacher's concurrent, retried, cached JSON client.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from krill.errors import KrillError
from krill.models.base import ChatClient, Embedder, Generation, Messages, Policy

__all__ = [
    "ChatClient",
    "Embedder",
    "Generation",
    "Messages",
    "Policy",
    "build_chat_client",
    "build_embedder",
    "build_policy",
]


def build_policy(cfg) -> Policy:
    """The policy named by `cfg.model.policy` (backend local | openai)."""
    pc = cfg.model.policy
    if pc.backend == "openai":
        from krill.models.openai_api import OpenAIPolicy

        return OpenAIPolicy(pc)
    from krill.models.local import LocalPolicy

    return LocalPolicy(pc.model, adapter=pc.adapter, dtype=pc.dtype, device=pc.device, cache_dir=cfg.cache_dir,
                       batch_size=pc.batch_size, seed=cfg.seed, choice_score=cfg.agent.choice_score,
                       max_prompt_tokens=cfg.agent.max_prompt_length, static_cache=pc.static_cache)  # fmt: skip


def build_embedder(cfg) -> Embedder:
    """The embedder named by `cfg.model.embedding`, wrapped in the on-disk cache (one per process)."""
    ec = cfg.model.embedding
    if os.environ.get("KRILL_EMBEDDER", "").lower() == "hash" or re.fullmatch(r"hash(-\d+)?", ec.model):
        from krill.models.embedder import HashEmbedder

        dim = int(ec.model.split("-", 1)[1]) if ec.model.startswith("hash-") else 64
        return HashEmbedder(dim)
    return _cached_embedder(
        ec.backend,
        ec.model,
        ec.api_base,
        ec.api_key_env,
        ec.batch_size,
        ec.timeout,
        ec.max_retries,
        ec.concurrency,
        str(Path(cfg.cache_dir) / "embeddings"),
    )


@functools.lru_cache(maxsize=8)
def _cached_embedder(
    backend, model, api_base, api_key_env, batch_size, timeout, max_retries, concurrency, cache_dir
):
    from krill.config import EmbeddingConfig
    from krill.models.embedder import CachedEmbedder, LocalEmbedder

    if backend == "local":
        return CachedEmbedder(LocalEmbedder(model, batch_size=batch_size), cache_dir)
    if backend == "openai":
        from krill.models.openai_api import OpenAIEmbedder

        ec = EmbeddingConfig(
            backend=backend,
            model=model,
            api_base=api_base,
            api_key_env=api_key_env,
            batch_size=batch_size,
            timeout=timeout,
            max_retries=max_retries,
            concurrency=concurrency,
        )
        return CachedEmbedder(OpenAIEmbedder(ec), cache_dir)
    raise KrillError(
        f"unknown embedding backend {backend!r}; use local or openai", where="model.embedding.backend"
    )


def build_chat_client(cfg, cache_path: str | Path | None = None) -> ChatClient:
    """The teacher's OpenAI-compatible JSON client (`model.teacher`), with an optional response cache."""
    from krill.models.openai_api import OpenAIChatClient

    return OpenAIChatClient(cfg.model.teacher, cache_path=cache_path)
