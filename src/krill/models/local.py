"""LocalPolicy: a transformers causal LM (embedded SmolLM2, 'tiny', or any local HF model) as a Policy.

Prompts are chat-templated, left-padded and decoded together (see `krill.models.decoding`); `score()`
recomputes the log-probs of given responses teacher-forced, which is what GRPO's ratio needs.
The RL trainer reuses `.model` and `.tokenizer` directly (LoRA training updates them in place).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import torch

from krill.models.base import Generation, Messages
from krill.models.chat_slots import ChatSlots
from krill.models.decoding import cache_kwarg, decode_batch
from krill.models.kv_prefix import PrefixCache, kv_bytes_per_token
from krill.models.loading import load_causal_lm
from krill.models.static_decode import StaticDecoder
from krill.models.static_decode import supported as static_supported


def default_cache_dir() -> str:
    return os.environ.get("KRILL_CACHE", str(Path.home() / ".cache" / "krill"))


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode for the duration (no dropout; gradient checkpointing would disable the KV cache),
    then the caller's mode back: the RL trainer shares this model and trains it between rollouts."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class LocalPolicy:
    """A local HF causal LM behind the Policy protocol (batched, left-padded, per-row stop strings)."""

    supports_choices = True  # generate(choices=...) answers one of the given choices (see choices.py)
    supports_prompt_ids = True  # generate(prompt_ids=...) takes token ids as they are (conversation mode)

    def __init__(
        self,
        model_name_or_path: str = "smollm2",
        adapter: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        cache_dir: str | Path | None = None,
        *,
        batch_size: int = 64,
        seed: int = 0,
        prefix_cache_bytes: int | None = None,
        rowwise_prefill: bool | None = None,
        choice_score: str = "sum",
        max_prompt_tokens: int = 2048,
        static_cache: bool | None = None,
    ):
        self.name = model_name_or_path if not adapter else f"{model_name_or_path}+{adapter}"
        self.choice_score = choice_score  # how choices are scored: sum | mean (agent.choice_score)
        self.batch_size = batch_size  # rows per forward pass; bigger batches are split
        self.model, self.tokenizer, self.device = load_causal_lm(
            model_name_or_path,
            adapter=adapter,
            dtype=dtype,
            device=device,
            cache_dir=cache_dir or default_cache_dir(),
            seed=seed,
        )
        # KV states of recent prompts, reused for their shared prefixes (0 disables; see kv_prefix.py).
        # Default: 1 GiB, or room for every row of a batch at its longest prompt (a conversation per row,
        # plus a group's shared first turns): a smaller cache evicts live chats and re-prefills them whole.
        if prefix_cache_bytes is None:
            rows = batch_size + batch_size // 2
            prefix_cache_bytes = max(1 << 30, rows * max_prompt_tokens * kv_bytes_per_token(self.model))
        self.prefix_cache_bytes = prefix_cache_bytes
        self.prefix_cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        # CPU prefill is compute-bound: one row at a time wastes nothing on padding (None = on CPU only)
        self.rowwise_prefill = self.device.type == "cpu" if rowwise_prefill is None else rowwise_prefill
        self.static: StaticDecoder | None = None
        self.slots: ChatSlots | None = None
        self._static_parts: tuple[StaticDecoder, ChatSlots] | None = None
        # a preallocated cache, the decode step captured as a CUDA graph (None = on CUDA only: on a CPU a
        # step is bound by compute, and the growing cache costs nothing measurable; see static_decode.py)
        self.use_static_cache(static_cache if static_cache is not None else self.device.type == "cuda")

    def use_static_cache(self, on: bool) -> None:
        """Decode on the static cache (`static_decode.py`), the chats' states kept in its slots across
        calls (`chat_slots.py`) where the prefix cache would hold them; or on the growing cache."""
        if on and not static_supported():
            logging.getLogger(__name__).warning(
                "model.policy.static_cache: this transformers' StaticCache is too old (needs 5.x); "
                "decoding on the growing cache"
            )
            on = False
        caching = self.prefix_cache is not None or self.slots is not None
        if on and self._static_parts is None:  # made once: a captured step keeps its buffers across switches
            kw = cache_kwarg(self.model)
            self._static_parts = StaticDecoder(self.model, kw), ChatSlots(self.model, kw)
        if on:
            self.static, self.slots = self._static_parts[0], (self._static_parts[1] if caching else None)
        else:
            self.static = self.slots = None
        self.prefix_cache = PrefixCache(self.prefix_cache_bytes) if caching and not on else None

    @property
    def prompt_cache(self) -> PrefixCache | ChatSlots | None:
        """Where prompts' states are kept for reuse (`stats()`, `reused_tokens`, `prefilled_tokens`)."""
        return self.slots if self.slots is not None else self.prefix_cache

    def reset_prefix_cache(self) -> None:
        """Forget stored prompt states (benchmarks: so a second run does not reuse the first's prompts).
        Not needed after a weight update: the cache drops states computed under other weights by itself
        (`kv_prefix.weights_version`, the one invalidation rule)."""
        if self.prefix_cache is not None:
            self.prefix_cache = PrefixCache(self.prefix_cache.max_bytes, self.prefix_cache.min_reuse)
        if self.slots is not None:
            self.slots.clear()

    # -- prompts ---------------------------------------------------------------------------------
    def prompt_text(self, messages: Messages) -> str:
        """The exact templated prompt (chat template + generation prompt) the model sees."""
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    # -- Policy ------------------------------------------------------------------------------------
    def generate(
        self,
        batch: list[Messages],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        want_logprobs: bool = False,
        stop: list[str] | None = None,
        seed: int | None = None,
        choices: list[list[str] | None] | None = None,
        prompt_ids: list[list[int]] | None = None,
    ) -> list[Generation]:
        """One response per conversation; texts keep the stop string they ended at (nothing after it).

        `choices[i]`, when given, restricts conversation i's response to one of those strings.
        `prompt_ids[i]`, when given, is conversation i's prompt as token ids, used as they are
        (`krill.models.chat_tokens` builds them by appending turns; then `prompt_text` is None).

        `logprobs` (when asked) are per response token under the temperature-1 distribution
        (log_softmax of the raw logits), matching `score()`. Sampling is reproducible given `seed`.
        """
        if not batch:
            return []
        prompts = [self.prompt_text(m) for m in batch] if prompt_ids is None else [None] * len(batch)
        generator = None
        if temperature > 0:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        out: list[Generation] = []
        for lo in range(0, len(prompts), self.batch_size):
            chunk = prompts[lo : lo + self.batch_size]
            ids = self._encode(chunk) if prompt_ids is None else prompt_ids[lo : lo + self.batch_size]
            chunk_choices = None
            if choices is not None:
                chunk_choices = [
                    self._encode(list(c)) if c else None for c in choices[lo : lo + self.batch_size]
                ]
            with eval_mode(self.model):
                rows = decode_batch(
                    self.model,
                    self.tokenizer,
                    ids,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    stop=stop,
                    generator=generator,
                    prefix_cache=self.prefix_cache,
                    rowwise_prefill=self.rowwise_prefill,
                    choices=chunk_choices,
                    choice_score=self.choice_score,
                    static=self.static,
                    slots=self.slots,
                )
            for text, row, row_ids in zip(chunk, rows, ids, strict=True):
                out.append(
                    Generation(
                        text=row.text,
                        prompt_tokens=len(row_ids),
                        response_tokens=len(row.token_ids),
                        prompt_text=text,
                        token_ids=row.token_ids,
                        logprobs=row.logprobs if want_logprobs else None,
                        finish_reason=row.finish_reason,
                        choice_index=row.choice_index,
                        choice_logprob=row.choice_logprob,
                    )
                )
        return out
