"""Chats kept in the static cache's slots across calls (issue 34, `krill.models.chat_slots`) give the
prefix-cache path's tokens and log-probs (fp32: to 1e-5): conversations turn after turn, window prompts,
constrained rows (the trie pass on the slots), rows finishing early, a GRPO group's shared first prompt
(prefilled once, copied into free slots), chats alike (a new turn computed once), chats ending and new ones starting, and columns running out (the slots compacted and grown)."""

from __future__ import annotations

import pytest
import torch

from krill.models.local import LocalPolicy

SYSTEM = "You are an expert agent operating in the ALFRED Embodied Environment. " * 3
TASKS = ["heat some egg", "put a clean mug in the coffeemachine", "look at a book under the lamp", "cool a tomato",
         "put two pencils in the drawer", "find a key"]  # fmt: skip
CHOICES = ["open cabinet 1", "go to fridge 1", "look", "take egg 1 from cabinet 2"]


def msgs(task: str, step: int = 0) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"## Task\n{task}\nstep {step}"},
    ]


@pytest.fixture(params=[False, True], ids=["sync", "lookahead"])
def pair(request):
    """The slots' policy and the growing cache's; the slots' decoder queues each step before the host's
    stop checks (`lookahead`, the CUDA default) or after them."""
    slots = LocalPolicy("tiny", device="cpu", static_cache=True)
    assert slots.slots is not None and slots.prefix_cache is None
    slots.static.lookahead = request.param
    return slots, LocalPolicy("tiny", device="cpu", static_cache=False)


def assert_same(a, b) -> None:
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.finish_reason for g in a] == [g.finish_reason for g in b]
    for x, y in zip(a, b, strict=True):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-5)
        assert x.choice_index == y.choice_index
        assert (x.choice_logprob is None) == (y.choice_logprob is None)
        if x.choice_logprob is not None:
            assert x.choice_logprob == pytest.approx(y.choice_logprob, abs=1e-5)


def play(policies, tasks: list[str], steps: int, *, constrained=(), ends: dict[int, int] | None = None,
         max_new_tokens: int = 6) -> list[list[int]]:  # fmt: skip
    """Chats stepping together on every policy (their outputs compared); chat i leaves after step
    `ends[i]`. Rows in `constrained` answer from CHOICES. Returns the chats' final token ids."""
    tok = policies[0].tokenizer
    ids = {
        i: tok(policies[0].prompt_text(msgs(t)), add_special_tokens=False)["input_ids"]
        for i, t in enumerate(tasks)
    }
    for step in range(steps):
        live = [i for i in ids if (ends or {}).get(i, steps) > step]
        kw = dict(max_new_tokens=max_new_tokens, temperature=1.0, want_logprobs=True, seed=step, stop=["\n", "e"],
                  choices=[CHOICES if i in constrained else None for i in live])  # fmt: skip
        outs = [
            p.generate([msgs(tasks[i]) for i in live], prompt_ids=[ids[i] for i in live], **kw)
            for p in policies
        ]
        for other in outs[1:]:
            assert_same(outs[0], other)
        turn = tok(f"\nobservation {step}\n", add_special_tokens=False)["input_ids"]
        for i, g in zip(live, outs[0], strict=True):
            ids[i] = [*ids[i], *g.token_ids, *turn]
    return list(ids.values())


def test_conversations_stay_in_their_slots(pair):
    slots, dynamic = pair
    play(pair, TASKS[:4], 4, constrained={1, 3})
    store = slots.slots
    # each call reused every chat's previous prompt: only the new turns were prefilled after the first
    assert store.reused_tokens > 0 and store.stats()["entries"] == 4 and store.rows == 4
    assert store.prefilled_tokens < dynamic.prompt_cache.prefilled_tokens + store.reused_tokens


def test_chats_that_end_and_chats_that_begin(pair):
    slots, _ = pair
    play(pair, TASKS[:5], 3, constrained={0}, ends={0: 1, 2: 2})
    play(pair, TASKS[4:], 2, constrained={1})  # task 4's chat again from its start: its slot is cut back
    assert slots.slots.stats()["entries"] == slots.slots.rows == 2  # the ended chats' slots given up


def test_a_groups_shared_first_prompt_is_copied_into_free_slots(pair, monkeypatch):
    """One chat held; a group of four then starts one new task: one prompt claims the slot sharing the
    system prompt, the other three get that part copied into free slots."""
    slots, _ = pair
    play(pair, TASKS[:1], 1)
    copies = []
    original = slots.slots._copy
    monkeypatch.setattr(slots.slots, "_copy", lambda c: (copies.append(dict(c)), original(c)))
    reused = slots.slots.reused_tokens
    play(pair, [TASKS[5]] * 4, 2, constrained={2})
    assert len(copies[0]) == 3 and slots.slots.reused_tokens > reused


def test_a_groups_first_prompt_is_prefilled_once(pair):
    """A GRPO group's G episodes start from one prompt no slot holds: it is prefilled on one row and
    written into the G slots, its last token's logits shared by the G rows."""
    slots, dynamic = pair
    n = len(slots.tokenizer(slots.prompt_text(msgs(TASKS[5])), add_special_tokens=False)["input_ids"])
    play(pair, [TASKS[5]] * 4, 1, constrained={2})
    assert slots.slots.prefilled_tokens == n and slots.slots.reused_tokens == 3 * n
    # with other new chats beside it, sampled and constrained, over later turns: the same tokens
    play(pair, [TASKS[4]] * 3 + TASKS[:3], 3, constrained={0, 4})


def test_chats_alike_have_their_new_turn_prefilled_once(pair):
    """Episodes of a group that acted alike are one chat twice: each new turn is computed once for them
    (on the rows that need it, not the whole slot buffer) and copied, its logits shared."""
    slots, dynamic = pair
    tok = slots.tokenizer
    a, b = (tok(slots.prompt_text(msgs(t)), add_special_tokens=False)["input_ids"] for t in TASKS[:2])
    kw = dict(max_new_tokens=4, want_logprobs=True, choices=[CHOICES, CHOICES, None])
    for policy in pair:
        policy.generate([msgs(TASKS[0])] * 2 + [msgs(TASKS[1])], prompt_ids=[a, a, b], **kw)
    turn_a = tok("\nobservation: you open the cabinet 1. it is empty.\n", add_special_tokens=False)[
        "input_ids"
    ]
    turn_b = tok("\nobservation: nothing happens.\n", add_special_tokens=False)["input_ids"]
    before = slots.slots.prefilled_tokens
    ids = [a + turn_a, a + turn_a, b + turn_b]
    outs = [p.generate([msgs(TASKS[0])] * 2 + [msgs(TASKS[1])], prompt_ids=ids, **kw) for p in pair]
    assert_same(*outs)
    assert slots.slots.prefilled_tokens - before == len(turn_a) + len(turn_b)


def test_the_trie_pass_reads_the_columns_in_use(pair, monkeypatch):
    """Its attention spans the prompts' columns and room for its nodes, not the whole buffer; its writes
    land in the buffer (views) and its choices are the growing path's."""
    import krill.models.decoding as decoding

    slots, dynamic = pair
    widths, pick = [], decoding.pick_choices
    monkeypatch.setattr(decoding, "pick_choices", lambda model, cache, *a, **k: widths.append(
        (cache.layers[0].keys.shape[2], cache.layers[0].keys.data_ptr())) or pick(model, cache, *a, **k))  # fmt: skip
    batch = [msgs(t) for t in TASKS]
    kw = dict(max_new_tokens=4, want_logprobs=True, choices=[CHOICES] * len(batch))
    assert_same(slots.generate(batch, **kw), dynamic.generate(batch, **kw))
    (width, ptr), store = widths[0], slots.slots
    assert store.column < width < store.columns and ptr == store.cache.layers[0].keys.data_ptr()


def test_rows_held_in_slots_out_of_order_sample_as_the_rows_do(pair):
    """A generator's draws go to rows in their order, whichever slots hold them (here: reversed)."""
    slots, _ = pair
    play(pair, TASKS[:4], 1)
    play(pair, TASKS[3::-1], 2, constrained={0, 1})
    assert slots.slots.stats()["entries"] == 4


def test_window_prompts_reuse_their_shared_part(pair):
    slots, _ = pair
    for step in range(3):  # a window prompt is not an extension: its slot keeps the shared part only
        batch = [msgs(t, step) for t in TASKS]
        kw = dict(max_new_tokens=8, temperature=0.0, want_logprobs=True, choices=[CHOICES, None] * 3)
        assert_same(slots.generate(batch, **kw), pair[1].generate(batch, **kw))
    assert slots.slots.reused_tokens > 0 and slots.slots.rows == 8


def test_columns_running_out_compact_and_grow_the_slots(pair, monkeypatch):
    slots, _ = pair
    shapes = []
    original = slots.slots._rebuild

    def spy(keep, rows, extra):
        before = slots.slots.cache
        original(keep, rows, extra)
        shapes.append((slots.slots.columns, slots.slots.cache is before))

    monkeypatch.setattr(slots.slots, "_rebuild", spy)
    play(pair, TASKS[:3], 12, constrained={1}, ends={0: 8})
    assert any(kept for _, kept in shapes)  # compacted in place: the same buffers (a captured step's)
    assert len({c for c, _ in shapes}) > 1  # and grown when compacting was not enough


def test_slots_shrink_once_few_chats_use_them(pair):
    slots, _ = pair
    slots.generate([msgs(t) for t in TASKS], max_new_tokens=2)
    assert slots.slots.rows == 8
    for step in range(2):
        slots.generate([msgs(TASKS[0], step)], max_new_tokens=2)
    assert slots.slots.rows == 2  # the smallest bucket


def test_new_weights_forget_the_slots(pair):
    slots, _ = pair
    slots.generate([msgs(TASKS[0])], max_new_tokens=2)
    reused = slots.slots.reused_tokens
    with torch.no_grad():
        next(slots.model.parameters()).add_(0.01)
    slots.generate([msgs(TASKS[0])], max_new_tokens=2)
    assert slots.slots.reused_tokens == reused  # nothing reused from before the update
    slots.generate([msgs(TASKS[0])], max_new_tokens=2)
    assert slots.slots.reused_tokens > reused


def test_switching_decoders_keeps_the_static_parts(pair):
    """Benchmarks switch one policy between decoders: the captured step's buffers must survive that."""
    slots, _ = pair
    decoder, store = slots.static, slots.slots
    slots.use_static_cache(False)
    assert slots.static is None and slots.slots is None and slots.prefix_cache is not None
    slots.use_static_cache(True)
    assert slots.static is decoder and slots.slots is store and slots.prefix_cache is None


def test_slots_without_a_static_decoder_are_refused(pair):
    from krill.models.decoding import decode_batch

    slots, _ = pair
    ids = slots.tokenizer(slots.prompt_text(msgs(TASKS[0])), add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="`slots` decode with a `static` decoder"):
        decode_batch(slots.model, slots.tokenizer, [ids], max_new_tokens=2, slots=slots.slots)
