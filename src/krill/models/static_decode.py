"""Decoding on a preallocated KV cache, one fixed-shape step that a GPU captures once and replays.

`decoding.decode` grows a DynamicCache: every step concatenates each layer's K/V and hands the model
new shapes, so on a GPU a step is hundreds of small kernel launches the host must issue one by one
(docs/benchmarks.md: 17,894 launches for 64 steps, 48.6 ms of CUDA time against 816 ms of CPU).
Here instead:
- the cache is preallocated (transformers' `StaticCache`) for `rows` rows × `columns` positions, both
  rounded up to buckets; a step writes one column in place, and the attention mask is one fixed
  [rows, columns] tensor whose next column is switched on;
- the step therefore has the same shapes every time within a bucket: on CUDA it is compiled once with
  symbolic shapes (`torch.compile(mode="reduce-overhead", dynamic=True)`), its CUDA graph recorded
  once per bucket and replayed; on CPU it runs eagerly;
- a row bucket's cache is kept and reused across calls while its column bucket holds (its buffers
  keep their addresses, which a captured graph needs); one cache per row bucket bounds the memory to
  about twice the largest batch's rows × columns of K/V;
- finished rows stay in the batch, their outputs dropped, until at most half the rows are live;
  the live rows then move to the next smaller bucket, whose step is captured once, not per step;
- between steps the host launches a handful of ops, whatever the depth: the sampled tokens stay on the
  device, and the layers' write counters are set inside the captured step (not one launch per layer);
- with `lookahead` (the default on CUDA) the next step is queued before the host reads this step's
  tokens for its stop checks, so the device runs it while the host checks: a row that stopped costs
  one step's slot of wasted work, and the host's time between steps no longer leaves the device idle.
Tokens and log-probs are those of the dynamic path (tests/models/test_static_decode.py): the same
mask, positions and sampling, and the sampler sees only the live rows, in the same order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)

# From 2 rows: a one-row bucket's size-1 dimension would specialize, a second compile to save one padding row
ROW_BUCKETS = (2, 4, 8, 16, 32, 64, 128, 256)
MIN_COLUMNS = 256  # cache length: powers of two from here, so a chat growing step by step recaptures rarely


def supported() -> bool:
    """Whether this transformers' StaticCache writes where its own device-side counter says (5.x):
    older versions place tokens by a `cache_position` argument this decoder does not pass."""
    try:
        from transformers.cache_utils import StaticLayer

        return isinstance(getattr(StaticLayer(max_cache_len=1), "cumulative_length", None), torch.Tensor)
    except (ImportError, TypeError):
        return False


def seek(cache, column: int) -> None:
    """Point a static cache's write counters (one per layer, on the device) at `column`: where the next
    write goes, whatever earlier writes left them at (the trie pass; the decode step sets them itself)."""
    for layer in cache.layers:
        layer.cumulative_length.fill_(column)


def _synced_clock(t: torch.Tensor) -> float:
    """Wall time once the device of `t` has finished its queued work."""
    if t.is_cuda:
        torch.cuda.synchronize(t.device)
    return time.perf_counter()


def row_bucket(n: int) -> int:
    """The smallest bucket holding `n` rows (multiples of the largest bucket past it)."""
    top = ROW_BUCKETS[-1]
    return next((b for b in ROW_BUCKETS if b >= n), -(-n // top) * top)


def column_bucket(n: int) -> int:
    """Cache columns for `n` positions: the next power of two, at least `MIN_COLUMNS`."""
    return max(MIN_COLUMNS, 1 << (n - 1).bit_length())


@dataclass
class StaticBatch:
    """Rows decoding on a static cache: `rows[s]` is the original row index at slot s (None: a
    padding or finished slot); `column` is where the next token's K/V goes."""

    cache: object
    mask: torch.Tensor  # [R, C] long
    positions: torch.Tensor  # [R, 1] position of the last token per slot
    rows: list[int | None]
    column: int
    # [R] the token each slot feeds the next step, kept on the device (a finished slot's is fed, not read)
    tokens: torch.Tensor | None = None
    at: torch.Tensor = field(init=False)  # `column` on the device: the step sets the write counters from it

    def __post_init__(self):
        if self.tokens is None:
            self.tokens = self.mask.new_zeros(len(self.rows))
        self.at = torch.tensor(self.column, device=self.mask.device)

    def live_slots(self) -> list[int]:
        """The slots of rows still decoding, in the rows' order (a sampler's draws go to rows in order)."""
        return sorted((s for s, r in enumerate(self.rows) if r is not None), key=self.rows.__getitem__)


class StaticDecoder:
    """Per model: the bucketed static caches and the (compiled on CUDA) one-token step."""

    def __init__(self, model, cache_kw: str, compile_step: bool | None = None, lookahead: bool | None = None):
        self.model, self.cache_kw = model, cache_kw  # `decoding.cache_kwarg(model)`
        device = next(model.parameters()).device
        self.compiled = device.type == "cuda" if compile_step is None else compile_step
        # queue step t+1 before reading step t's tokens (decoding.decode_static): pays where the device
        # runs behind the host (CUDA); on CPU the work is synchronous and a call's last step is wasted
        self.lookahead = device.type == "cuda" if lookahead is None else lookahead
        self.caches: dict[int, tuple[int, object]] = {}  # row bucket → (its columns, its cache)
        self._step = None
        self.warm: dict[tuple[int, int], int] = {}  # (rows, columns) → steps run (2: compiled and captured)
        self.warmup_s = 0.0  # wall time of those first steps: compiles and captures
        if self.compiled:
            # Compiled once with symbolic rows and columns, then CUDA graphs record once per bucket shape:
            # compiled per shape instead (dynamic=False), each new (rows, columns) bucket costs a whole
            # compile (~21 s for a 360M model, inductor on CPU: benchmarks/bench_compile.py) where a
            # recording costs one step.
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            self._step = torch.compile(self._forward, mode="reduce-overhead", dynamic=True)

    def _forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, at: torch.Tensor, cache
    ) -> torch.Tensor:
        # every layer writes at `at`, whatever a compiler's warm-up or capture run, or a trie pass on the
        # same cache, left its counter at: set inside the graph, not by one launch per layer before it
        for layer in cache.layers:
            layer.cumulative_length.copy_(at)
        out = self.model(input_ids=tokens, attention_mask=mask, position_ids=positions, use_cache=True,
                         **{self.cache_kw: cache})  # fmt: skip
        return out.logits[:, -1, :]

    def step(self, batch: StaticBatch) -> torch.Tensor:
        """`batch.tokens`, one per slot, written at column `batch.column`; returns next logits [R, V]."""
        batch.at.fill_(batch.column)
        batch.mask[:, batch.column] = 1
        batch.positions += 1
        batch.column += 1
        args = (batch.tokens[:, None], batch.mask, batch.positions, batch.at, batch.cache)
        if self._step is None:
            return self._forward(*args)
        # a shape's first two steps (compile or warm-up, then the CUDA graph's capture) are timed and
        # logged: a one-time cost a benchmark must tell apart from the steps' own
        shape = tuple(batch.mask.shape)
        warming = self.warm.get(shape, 0) < 2
        if warming:
            t0 = _synced_clock(batch.mask)
        # a captured graph's output buffer is overwritten by its next replay
        logits = self._step(*args).clone()
        if warming:
            seconds = _synced_clock(batch.mask) - t0
            self.warm[shape] = self.warm.get(shape, 0) + 1
            self.warmup_s += seconds
            log.info(
                "static decoder: %d rows × %d columns, step %d warmed in %.2f s",
                *shape,
                self.warm[shape],
                seconds,
            )
        return logits

    def _cache(self, rows: int, columns: int):
        """The row bucket's cache, emptied; a new one (the old one freed) when the columns differ."""
        from transformers import StaticCache

        held = self.caches.get(rows)
        if held is None or held[0] != columns:
            self.caches.pop(rows, None)  # freed before the new one is allocated
            held = self.caches[rows] = (columns, StaticCache(config=self.model.config, max_cache_len=columns))
        held[1].reset()
        return held[1]

    def start(
        self, layers, mask: torch.Tensor, positions: torch.Tensor, rows: list[int], max_new: int
    ) -> StaticBatch:
        """A static batch from a prefilled dynamic cache's `layers` (their rows in `rows` order)."""
        n, length = mask.shape
        slots = row_bucket(n)
        pick = torch.tensor(list(range(n)) + [0] * (slots - n), device=mask.device)  # padding copies row 0
        kv = [(layer.keys[pick], layer.values[pick]) for layer in layers]
        return self._fill(
            kv, mask[pick], positions[pick, -1:], [*rows, *[None] * (slots - n)], length, max_new, None
        )

    def shrink(self, batch: StaticBatch, remaining: int) -> StaticBatch:
        """Move the live slots to the smallest bucket that holds them, once at most half are live."""
        live = batch.live_slots()
        slots = row_bucket(len(live))
        if not live or len(live) * 2 > len(batch.rows) or slots == len(batch.rows):
            return batch
        pick = torch.tensor(live + [live[0]] * (slots - len(live)), device=batch.mask.device)
        kv = [(layer.keys[pick, :, : batch.column], layer.values[pick, :, : batch.column])
              for layer in batch.cache.layers]  # fmt: skip
        rows = [batch.rows[s] for s in live] + [None] * (slots - len(live))
        return self._fill(kv, batch.mask[pick, : batch.column], batch.positions[pick], rows, batch.column,
                          remaining, batch.tokens[pick])  # fmt: skip

    def _fill(self, kv, mask, positions, rows, length: int, max_new: int, tokens) -> StaticBatch:
        columns = column_bucket(length + max_new)
        cache = self._cache(len(rows), columns)
        for i, (k, v) in enumerate(kv):
            cache.update(k.contiguous(), v.contiguous(), i)
        full = mask.new_zeros((len(rows), columns))
        full[:, :length] = mask
        return StaticBatch(cache, full, positions.clone(), rows, length, tokens)
