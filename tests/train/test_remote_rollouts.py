"""Rollouts on an OpenAI-compatible server: responses re-tokenized locally, adapters pushed to the server."""

import httpx
import pytest

from krill.config import load_config
from krill.errors import KrillError
from krill.models.base import Generation
from krill.models.tiny import build_tiny_tokenizer
from krill.train.remote import RemoteRollouts, load_adapter_on_server


class FakeRemote:
    name = "server"

    def generate(self, batch, **kw):
        assert kw["want_logprobs"] is False  # the server's log-probs are not used: the update recomputes them
        return [Generation(text="go to fridge 1", finish_reason="stop"),
                Generation(text="<action>open drawer 3</action>", finish_reason="stop")]  # fmt: skip


def test_remote_generations_get_local_prompt_text_and_token_ids():
    tok = build_tiny_tokenizer()
    msgs = [[{"role": "user", "content": "task A"}], [{"role": "user", "content": "task B"}]]
    gens = RemoteRollouts(FakeRemote(), tok).generate(msgs, max_new_tokens=8, want_logprobs=True)
    assert gens[0].prompt_text == tok.apply_chat_template(msgs[0], add_generation_prompt=True, tokenize=False)
    assert gens[0].token_ids[-1] == tok.eos_token_id  # ended at end-of-turn
    assert tok.decode(gens[0].token_ids[:-1]) == "go to fridge 1"
    assert tok.decode(gens[1].token_ids) == "<action>open drawer 3</action>"  # ended at the stop string


def test_adapter_is_posted_to_the_load_endpoint(monkeypatch, tmp_path):
    sent = {}

    def fake_post(url, json, headers, timeout):
        sent.update(url=url, json=json)
        return httpx.Response(200, text="ok")

    monkeypatch.setattr(httpx, "post", fake_post)
    cfg = load_config(
        overrides=["model.policy.backend=openai", "model.policy.api_base=http://127.0.0.1:8000/v1"]
    )
    load_adapter_on_server(cfg, "krill-iter0003", tmp_path / "a")
    assert sent == {"url": "http://127.0.0.1:8000/v1/load_lora_adapter",
                    "json": {"lora_name": "krill-iter0003", "lora_path": str(tmp_path / "a")}}  # fmt: skip
    monkeypatch.setattr(httpx, "post", lambda *a, **k: httpx.Response(400, text="LoRA disabled"))
    with pytest.raises(KrillError, match="HTTP 400 LoRA disabled"):
        load_adapter_on_server(cfg, "x", tmp_path)


def test_the_servers_stop_reason_decides_whether_end_of_sequence_is_scored():
    """Issue 32: the update appended an end-of-sequence token the server may not have produced (a bare
    action stopped at a newline was scored as if the model had ended its turn)."""
    from krill.train.remote import produced_eos

    at_newline = Generation(
        text="go to fridge 1", finish_reason="stop", stop_reason="\n", stop_reason_known=True
    )
    at_eos = Generation(text="go to fridge 1", finish_reason="stop", stop_reason=None, stop_reason_known=True)
    cut = Generation(text="go to fri", finish_reason="length", stop_reason=None, stop_reason_known=True)
    assert not produced_eos(at_newline) and produced_eos(at_eos) and not produced_eos(cut)
    unknown = Generation(text="go to fridge 1", finish_reason="stop")  # a server that does not say
    assert produced_eos(unknown) and not produced_eos(
        Generation(text="<action>x</action>", finish_reason="stop")
    )


def test_vllms_stop_reason_is_read_from_the_response():
    from openai.types.chat import ChatCompletion

    from krill.models.endpoint import _parse_chat

    def completion(**extra):
        return ChatCompletion.model_validate({
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "go"},
                         **extra}],
        })  # fmt: skip

    assert (
        _parse_chat(completion(stop_reason="\n")).stop_reason,
        _parse_chat(completion(stop_reason="\n")).stop_reason_known,
    ) == ("\n", True)
    assert _parse_chat(completion(stop_reason=None)).stop_reason_known
    assert not _parse_chat(completion()).stop_reason_known  # the OpenAI API sends no such field
