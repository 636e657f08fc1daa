"""Stop strings checked only after tokens that can complete one: the same rows stop at the same token as
when every row's whole text is decoded after every token."""

from __future__ import annotations

import random

import pytest

from krill.models.decoding import RowResult, _hit_stop, find_stop, stop_triggers
from krill.models.tiny import build_tiny_tokenizer

STOPS = ["</action>", "\n", "é", "]", "ab"]


def metaspace_tokenizer():
    """A SentencePiece-style tokenizer (▁ for spaces, byte tokens for characters it lacks), trained here."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=150, special_tokens=["<unk>", "<s>"], show_progress=False)
    tok.train_from_iterator(["go to desk 1 </action> take the mug ab", "search[red shoes] é ü"] * 50, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = {
        **model["vocab"],
        **{f"<0x{b:02X}>": len(model["vocab"]) + b for b in range(256)},
    }  # plain tokens
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok.model = models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>")


@pytest.mark.parametrize("make", [build_tiny_tokenizer, metaspace_tokenizer], ids=["byte-level", "metaspace"])
def test_a_row_stops_at_the_same_token_as_with_a_decode_after_every_token(make):
    tok = make()
    triggers = stop_triggers(tok, STOPS)
    assert triggers is not None and 0 < len(triggers) < len(tok)  # most tokens are never decoded
    # a third of the tokens single bytes, so that characters (é, ü, 😀) are split across tokens
    byte_ids = [i for t, i in tok.get_vocab().items() if len(t) == 1 or t.startswith("<0x")]
    rng, checked, hits = random.Random(0), 0, 0
    for _ in range(300):
        row = RowResult()
        for _ in range(40):
            row.token_ids.append(rng.choice(byte_ids) if rng.random() < 0.3 else rng.randrange(len(tok)))
            every_token = find_stop(tok.decode(row.token_ids, skip_special_tokens=True), STOPS) >= 0
            assert _hit_stop(tok, row, STOPS, triggers) == every_token, row.token_ids
            checked += 1
            if every_token:
                hits += 1
                break
    assert hits > 50 and checked > 3000  # stops really happened, mid-row and at the first token
    e_acute = [
        tok.convert_tokens_to_ids(t) for t in (("Ã", "©") if "Ã" in tok.get_vocab() else ("<0xC3>", "<0xA9>"))
    ]
    row = RowResult(token_ids=[*tok("go", add_special_tokens=False)["input_ids"], e_acute[0]])
    assert not _hit_stop(tok, row, ["é"], stop_triggers(tok, ["é"]))
    row.token_ids.append(e_acute[1])  # its second byte, alone a partial character, completes the stop
    assert _hit_stop(tok, row, ["é"], stop_triggers(tok, ["é"]))


def test_stops_a_single_token_cannot_be_told_apart_from_decode_after_every_token():
    tok = build_tiny_tokenizer()
    assert stop_triggers(tok, ["Action: "]) is None  # a trailing space: SentencePiece drops it when alone
    tok.clean_up_tokenization_spaces = True  # rewrites spaces across tokens
    assert stop_triggers(tok, ["\n"]) is None
