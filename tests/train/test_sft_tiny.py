"""SFT on the tiny in-process model: the loss falls, only the adapter moves, resume == uninterrupted."""

import json
from types import SimpleNamespace

import pytest
import torch

from krill.config import load_config
from krill.errors import KrillError
from krill.models.tiny import build_tiny_model
from krill.train.checkpoint import make_trainable
from krill.train.sft import collate, summed_token_ce, tokenize_demo, train_sft

ACTIONS = [
    "go to fridge 1",
    "take apple 1 from countertop 2",
    "heat apple 1 with microwave 1",
    "open drawer 3",
]


def _demos(n=16):
    out = []
    for i in range(n):
        obs = f"You are in the middle of a room. Step {i}. Your task is to: put a hot apple in fridge."
        out.append({
            "messages": [
                {"role": "system", "content": "You are an expert agent operating in the ALFRED Embodied Environment."},
                {"role": "user", "content": obs},
                {"role": "assistant", "content": ACTIONS[i % len(ACTIONS)]},
            ]
        })  # fmt: skip
    return out


def _episodes(n=8):
    """Conversation-mode demos: whole episodes, one chat each, three replies per chat."""
    out = []
    for i in range(n):
        msgs = [{"role": "system", "content": "You are an expert agent operating in the ALFRED Embodied Environment."},
                {"role": "user", "content": f"Episode {i}. Your task is to: put a hot apple in fridge."}]  # fmt: skip
        for k in range(3):
            if k:
                msgs.append({"role": "user", "content": f"You arrive at place {k}."})
            msgs.append({"role": "assistant", "content": ACTIONS[(i + k) % len(ACTIONS)]})
        out.append({"messages": msgs})
    return out


def _cfg(**sft):
    overrides = [f"sft.{k}={v}" for k, v in sft.items()]
    return load_config(preset="tiny", overrides=["model.policy.device=cpu", *overrides])


def _policy(cfg):
    model, tok = build_tiny_model(0)
    return SimpleNamespace(model=make_trainable(model, cfg.lora), tokenizer=tok)


def _demo_loss(policy, demos, max_length=512):
    rows = [tokenize_demo(policy.tokenizer, d["messages"], max_length) for d in demos]
    with torch.no_grad():
        s, n = summed_token_ce(policy.model, collate(rows, policy.tokenizer.pad_token_id))
    return s.item() / n


def test_labels_cover_only_the_assistant_answer():
    _, tok = build_tiny_model(0)
    ids, labels = tokenize_demo(tok, _demos(1)[0]["messages"], 512)
    answer = [y for y in labels if y != -100]
    assert tok.decode(answer) == ACTIONS[0] + "<|im_end|>"
    assert labels[: len(ids) - len(answer)] == [-100] * (len(ids) - len(answer))
    with pytest.raises(KrillError, match="must end with an assistant"):
        tokenize_demo(tok, _demos(1)[0]["messages"][:-1], 512)


def test_sft_lowers_demo_loss_and_changes_only_adapter(tmp_path):
    torch.manual_seed(0)
    cfg = _cfg(epochs=4, learning_rate=0.01, batch_size=8, micro_batch_size=4)
    policy = _policy(cfg)
    demos = _demos()
    base_before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_" not in n}
    lora_before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_B" in n}
    before = _demo_loss(policy, demos)
    res = train_sft(demos, cfg, tmp_path / "sft", policy=policy)
    after = _demo_loss(policy, demos)
    assert after < before * 0.7, (before, after)
    assert res.steps == 8 and res.final_loss < res.initial_loss
    for n, p in policy.model.named_parameters():
        if n in base_before:
            assert torch.equal(p, base_before[n]), f"base weight {n} changed"
    assert any(
        not torch.equal(p, lora_before[n]) for n, p in policy.model.named_parameters() if n in lora_before
    )
    out = tmp_path / "sft"
    for name in ("adapter_model.safetensors", "adapter_config.json", "config.yaml", "tokenizer.json"):
        assert (out / name).exists(), name
    # the loss curve, per optimizer step, in metrics.jsonl and in TensorBoard (as RL's)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9)) and rows[0]["loss"] == pytest.approx(
        res.initial_loss
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == list(range(1, 9))
    # the saved adapter reproduces the trained model's loss on a fresh base
    from peft import PeftModel

    base, tok = build_tiny_model(0)
    reloaded = SimpleNamespace(model=PeftModel.from_pretrained(base, str(out)), tokenizer=tok)
    assert _demo_loss(reloaded, demos) == pytest.approx(after, rel=1e-4)


def test_full_finetune_changes_base_weights(tmp_path):
    cfg = _cfg(epochs=1, learning_rate=0.01, batch_size=8, **{"lora.enabled": "false"})
    policy = _policy(cfg)
    w0 = policy.model.model.layers[0].mlp.up_proj.weight.detach().clone()
    train_sft(_demos(8), cfg, tmp_path / "full", policy=policy)
    assert not torch.equal(policy.model.model.layers[0].mlp.up_proj.weight, w0)
    assert (tmp_path / "full" / "config.json").exists()


@pytest.mark.parametrize("context", ["window", "conversation"])
def test_sft_resume_matches_uninterrupted(tmp_path, context):
    demos = _demos() if context == "window" else _episodes()
    cfg = _cfg(epochs=3, learning_rate=0.01, batch_size=4, micro_batch_size=2, checkpoint_every=2)
    full = train_sft(demos, cfg, tmp_path / "a", policy=_policy(cfg))
    # an "interrupted" run: the first epoch only (checkpointed), then resumed to the end
    short = cfg.override({"sft.epochs": 1})
    train_sft(demos, short, tmp_path / "b", policy=_policy(cfg))
    resumed = train_sft(demos, cfg, tmp_path / "b", resume=True, policy=_policy(cfg))
    assert resumed.losses == pytest.approx(full.losses, rel=1e-5)
    assert len(resumed.losses) == 3 * len(demos) // 4  # 3 epochs of len(demos) / batch 4 steps


def test_batched_left_padded_loss_equals_one_at_a_time_full_logits():
    """The logits_to_keep fast path == plain full-logits CE on each unpadded example."""
    model, tok = build_tiny_model(0)
    demos = _demos(3)
    demos[1]["messages"][1]["content"] += " A much longer observation with many more words in it."
    rows = [tokenize_demo(tok, d["messages"], 512) for d in demos]
    with torch.no_grad():
        fast, n_fast = summed_token_ce(model, collate(rows, tok.pad_token_id))
        naive, n_naive = 0.0, 0
        for ids, labels in rows:
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
            y = torch.tensor(labels[1:])
            naive += torch.nn.functional.cross_entropy(logits, y, ignore_index=-100, reduction="sum").item()
            n_naive += int((y != -100).sum())
    assert n_fast == n_naive and fast.item() == pytest.approx(naive, rel=1e-4)
