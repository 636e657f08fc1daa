"""One GRPO update on the tiny model: it moves the adapter when advantages are non-zero, not when rewards tie."""

import pytest
import torch

from krill.config import load_config
from krill.models.tiny import build_tiny_model
from krill.schema import Step, Trajectory
from krill.train.checkpoint import make_trainable
from krill.train.grpo import group_advantages
from krill.train.samples import Sample, build_samples, sequence_logprobs, shaped_rewards, token_budget_batches
from krill.train.setup import make_accelerator
from krill.train.update import grpo_update


def _setup(**rl):
    cfg = load_config(
        preset="tiny", overrides=["model.policy.device=cpu", *[f"rl.{k}={v}" for k, v in rl.items()]]
    )
    model, tok = build_tiny_model(0)
    model = make_trainable(model, cfg.lora)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.rl.learning_rate, weight_decay=0
    )
    return cfg, model, tok, opt


def _traj(reward, invalid=0, tok=None, action="take apple 1 from countertop 2"):
    prompt = (
        "<|im_start|>user\nYour task is to: put a hot apple in fridge.<|im_end|>\n<|im_start|>assistant\n"
    )
    resp = tok(action, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    steps = [Step(observation="You are in the middle of a room.", action=action, valid=i >= invalid,
                  prompt_text=prompt, response_token_ids=resp) for i in range(2)]  # fmt: skip
    return Trajectory(task_description="put a hot apple in fridge", task_category="Heat", steps=steps,
                      total_reward=reward, success=reward > 0)  # fmt: skip


def _lora(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_nonzero_advantages_change_only_lora_weights():
    cfg, model, tok, opt = _setup()
    trajs = [_traj(10.0, tok=tok), _traj(0.0, invalid=1, tok=tok, action="go to fridge 1")]
    rewards = shaped_rewards(trajs, cfg.rl.invalid_action_penalty)
    assert rewards.tolist() == pytest.approx([10.0, -0.1])
    adv = group_advantages(rewards, torch.tensor([0, 0]))
    samples = build_samples(trajs, adv, tok)
    assert len(samples) == 4 and {s.advantage > 0 for s in samples} == {True, False}
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = _lora(model)
    stats = grpo_update(model, opt, samples, cfg, make_accelerator(cfg), tok.pad_token_id)
    assert stats["update/skipped"] == 0.0
    assert stats["losses/kl"] == pytest.approx(0.0, abs=1e-7)  # fresh adapter: policy == reference
    assert stats["losses/ratio"] == pytest.approx(1.0)  # old log-probs recomputed by the same model
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)


def test_equal_rewards_do_not_change_weights():
    cfg, model, tok, opt = _setup()
    trajs = [_traj(10.0, tok=tok), _traj(10.0, tok=tok, action="go to fridge 1")]
    adv = group_advantages(shaped_rewards(trajs, 0.1), torch.tensor([0, 0]))
    assert adv.tolist() == [0.0, 0.0]
    samples = build_samples(trajs, adv, tok)
    assert samples == []
    before = _lora(model)
    stats = grpo_update(model, opt, samples, cfg, make_accelerator(cfg), tok.pad_token_id)
    assert stats["update/skipped"] == 1.0
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)


def test_update_raises_likelihood_of_rewarded_response():
    cfg, model, tok, opt = _setup(learning_rate=0.01)
    good, bad = _traj(10.0, tok=tok), _traj(0.0, tok=tok, action="go to fridge 1")
    adv = group_advantages(shaped_rewards([good, bad], 0.1), torch.tensor([0, 0]))
    samples = build_samples([good, bad], adv, tok)

    def lp(sample):
        with torch.no_grad():
            logp, mask, _ = sequence_logprobs(model, [sample], tok.pad_token_id, "cpu")
        return (logp * mask).sum().item()

    pos = next(s for s in samples if s.advantage > 0)
    neg = next(s for s in samples if s.advantage < 0)
    p0, n0 = lp(pos), lp(neg)
    for _ in range(3):
        grpo_update(model, opt, samples, cfg, make_accelerator(cfg), tok.pad_token_id)
    assert lp(pos) > p0 and lp(neg) < n0


def test_token_budget_microbatches_give_the_same_gradient():
    """Accumulating over token-budgeted micro-batches == one big batch (the iteration's token mean)."""
    grads = []
    for budget in (64, 100_000):
        cfg, model, tok, opt = _setup(micro_batch_tokens=budget, learning_rate=1e-3)
        trajs = [
            _traj(10.0, tok=tok),
            _traj(0.0, tok=tok, action="go to fridge 1"),
            _traj(3.0, tok=tok, action="open drawer 3"),
        ]
        adv = group_advantages(shaped_rewards(trajs, 0.1), torch.tensor([0, 0, 0]))
        samples = build_samples(trajs, adv, tok)
        n_micro = len(token_budget_batches(samples, budget))
        assert n_micro > 1 if budget == 64 else n_micro == 1
        opt.step = lambda: None  # keep the gradient for inspection
        opt.zero_grad = lambda set_to_none=True: None
        grpo_update(model, opt, samples, cfg, make_accelerator(cfg), tok.pad_token_id)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_token_budget_packs_long_samples_alone():
    s = [Sample([1] * n + [2] * 4, [0] * n + [1] * 4, 1.0) for n in (10, 10, 6000, 20)]
    batches = token_budget_batches(s, 1024)
    assert [len(b) for b in batches] == [3, 1] and len(batches[-1][0]) == 6004


def test_reference_is_the_starting_adapter_not_the_base_model(tmp_path):
    """RL from an SFT adapter: π_ref is that adapter (KL 0 at the first update), not the base model."""
    from krill.train.update import reference_state

    cfg, model, tok, opt = _setup()
    with torch.no_grad():  # stand-in for SFT: the adapter now changes the model's outputs
        for n, p in model.named_parameters():
            if p.requires_grad and "lora_B" in n:
                p.add_(0.05 * torch.randn_like(p))
    trajs = [_traj(10.0, tok=tok), _traj(0.0, invalid=1, tok=tok, action="go to fridge 1")]
    samples = build_samples(trajs, group_advantages(shaped_rewards(trajs, 0.1), torch.tensor([0, 0])), tok)
    accel = make_accelerator(cfg)
    ref = reference_state(model, tmp_path, resume=False, accel=accel)
    assert (tmp_path / "reference.safetensors").exists()
    before = _lora(model)
    stats = grpo_update(model, opt, samples, cfg, accel, tok.pad_token_id, ref)
    assert stats["losses/kl"] == pytest.approx(0.0, abs=1e-7)
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    resumed = reference_state(model, tmp_path, resume=True, accel=accel)  # read back, not re-captured
    assert all(torch.equal(resumed[n], before[n]) for n in before)

    cfg2, base_ref_model, _, opt2 = _setup()
    base_ref_model.load_state_dict(model.state_dict())
    stats_base = grpo_update(base_ref_model, opt2, samples, cfg2, make_accelerator(cfg2), tok.pad_token_id)
    assert stats_base["losses/kl"] > 1e-4  # "adapter disabled" would pull toward the untrained base
