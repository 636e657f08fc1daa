"""The GPU path on DEVICE: batched decoding, bf16, rollout log-probs vs GRPO scoring, SFT and GRPO steps,
KV caches on the device, checkpoints that move to CPU. Skipped without DEVICE (see conftest.py).

Correctness runs on the tiny model (fp32: exact comparisons) and on a random-weight model of the
default policy's real shape (SmolLM2-135M, `random:smollm2-135m`) in bf16, krill's dtype on GPUs.
Tolerances for bf16 were set from the CPU's bf16 on the same model (bf16 vs fp32 log-probs: mean
0.006, max 0.02 nats; rollout vs re-scored: mean 0.004, max 0.016) with about 5x headroom.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
from agent_fakes import EnvListPool, KitchenEnv  # noqa: E402

from krill.agent.actors import LLMActor
from krill.agent.rollout import run_episodes
from krill.config import load_config
from krill.envs.pool import SerialPool
from krill.models.decoding import prefill
from krill.models.local import LocalPolicy
from krill.schema import Step, Trajectory
from krill.testing.scoring import teacher_forced_logprobs
from krill.train.checkpoint import latest_checkpoint
from krill.train.grpo import group_advantages
from krill.train.samples import build_samples, sequence_logprobs
from krill.train.setup import load_training_policy, make_accelerator
from krill.train.sft import train_sft
from krill.train.update import grpo_update

pytestmark = pytest.mark.gpu

# KRILL_GPU_TEST_DEVICE=cpu runs these on CPU: a check of the tests themselves before a GPU is at hand
DEVICE = torch.device(os.environ.get("KRILL_GPU_TEST_DEVICE", "cuda"))
REAL = "random:smollm2-135m"
BF16_MEAN, BF16_MAX = 0.03, 0.1  # nats, |Δ log-prob| per token
TASKS = [
    "Your task is to: heat some potato and put it in the fridge.",
    "Your task is to: put a clean mug in the coffeemachine. You are in the middle of a room. " * 3,
    "Instruction: i need a pair of waterproof hiking shoes, and price lower than 60.00 dollars",
    "look",
]
ACTIONS = [
    "go to fridge 1",
    "take apple 1 from countertop 2",
    "heat apple 1 with microwave 1",
    "open drawer 3",
]


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": text}]


def _gaps(a: list[list[float]], b: list[list[float]]) -> tuple[float, float]:
    d = [abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)]
    return sum(d) / len(d), max(d)


def _demos(n: int = 8) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"Step {i}. Your task is to: put a hot apple in fridge."},
                      {"role": "assistant", "content": ACTIONS[i % len(ACTIONS)]}]}
        for i in range(n)
    ]  # fmt: skip


def _cfg(*overrides: str):
    return load_config(
        preset="tiny", overrides=[f"model.policy.device={DEVICE.type}", "env.name=webshop", *overrides]
    )


def _adapter_and_base(model) -> tuple[dict, dict]:
    snap = {n: p.detach().clone() for n, p in model.named_parameters()}
    return {n: p for n, p in snap.items() if "lora_" in n}, {
        n: p for n, p in snap.items() if "lora_" not in n
    }


def _assert_only_adapter_moved(model, lora: dict, base: dict) -> None:
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], w) for n, w in base.items()), "a base weight changed"
    assert any(not torch.equal(params[n], w) for n, w in lora.items()), "no adapter weight changed"
    assert all(p.device.type == DEVICE.type for p in params.values())


@pytest.fixture(scope="module")
def tiny_dev() -> LocalPolicy:
    return LocalPolicy("tiny", device=DEVICE.type, dtype="float32")


def test_batched_greedy_on_cuda_equals_one_at_a_time_and_the_cpu(tiny_dev, gpu_record):
    batch = tiny_dev.generate([_msgs(t) for t in TASKS], max_new_tokens=20, want_logprobs=True)
    for task, b in zip(TASKS, batch, strict=True):
        s = tiny_dev.generate([_msgs(task)], max_new_tokens=20, want_logprobs=True)[0]
        assert b.token_ids == s.token_ids and b.text == s.text
        assert b.logprobs == pytest.approx(s.logprobs, abs=1e-4)
    cpu = LocalPolicy("tiny", device="cpu").generate(
        [_msgs(t) for t in TASKS], max_new_tokens=20, want_logprobs=True
    )
    assert [g.token_ids for g in cpu] == [g.token_ids for g in batch]
    mean, worst = _gaps([g.logprobs for g in cpu], [g.logprobs for g in batch])
    assert worst < 1e-3
    gpu_record(cuda_vs_cpu_logprob_max_gap=worst, tokens=sum(len(g.token_ids) for g in batch))


def test_real_shape_bf16_batched_greedy_matches_one_at_a_time(gpu_record):
    policy = LocalPolicy(REAL, device=DEVICE.type)  # dtype auto → bf16 on DEVICE
    if DEVICE.type == "cuda":
        assert next(policy.model.parameters()).dtype == torch.bfloat16
    batch = policy.generate([_msgs(t) for t in TASKS], max_new_tokens=16)
    equal, worst_tie = 0, 0.0
    for task, b in zip(TASKS, batch, strict=True):
        s = policy.generate([_msgs(task)], max_new_tokens=16)[0]
        if b.token_ids == s.token_ids:
            equal += 1
            continue
        # different rounding in a padded batch may flip a near tie, never a clear choice
        t = next(i for i, (x, y) in enumerate(zip(b.token_ids, s.token_ids, strict=False)) if x != y)
        alt = s.token_ids[:t] + [b.token_ids[t]]
        lp_single, lp_batched = teacher_forced_logprobs(
            policy, [s.prompt_text] * 2, [s.token_ids[: t + 1], alt]
        )
        gap = abs(lp_single[-1] - lp_batched[-1])
        worst_tie = max(worst_tie, gap)
        assert gap < BF16_MAX, f"row {task[:30]!r}: batched picked a token {gap:.3f} nats below the best"
    gpu_record(rows_equal=equal, rows=len(TASKS), worst_tie_gap=worst_tie)


def test_bf16_and_fp32_agree_on_a_real_shape(gpu_record):
    p32 = LocalPolicy(REAL, device=DEVICE.type, dtype="float32")
    p16 = LocalPolicy(REAL, device=DEVICE.type, dtype="bfloat16")
    gens = p32.generate([_msgs(t) for t in TASKS], max_new_tokens=16, want_logprobs=True)
    prompts, responses = [g.prompt_text for g in gens], [g.token_ids for g in gens]
    mean, worst = _gaps(
        teacher_forced_logprobs(p32, prompts, responses), teacher_forced_logprobs(p16, prompts, responses)
    )
    g16 = p16.generate([_msgs(t) for t in TASKS], max_new_tokens=16)
    agree = sum(
        a == b for x, y in zip(gens, g16, strict=True) for a, b in zip(x.token_ids, y.token_ids, strict=False)
    )
    gpu_record(mean_gap=mean, max_gap=worst, greedy_tokens_agree=agree, tokens=sum(map(len, responses)))
    assert mean < BF16_MEAN and worst < BF16_MAX, (mean, worst)


MODELS = [("tiny", "float32", 1e-4, 1e-3), (REAL, "bfloat16", BF16_MEAN, BF16_MAX)]
AGENTS = {  # each way an episode reaches the model: a fresh window per step, one chat, choices only
    "window": [],
    "conversation": ["agent.context=conversation"],
    "conversation-constrained": ["agent.context=conversation", "agent.constrain_actions=true"],
}


@pytest.mark.parametrize("agent", list(AGENTS))
@pytest.mark.parametrize(("model", "dtype", "tol_mean", "tol_max"), MODELS)
def test_rollout_logprobs_equal_grpo_scoring_on_device(model, dtype, tol_mean, tol_max, agent, gpu_record):
    cfg = _cfg(f"model.policy.model={model}", f"model.policy.dtype={dtype}", *AGENTS[agent])
    # the GPU's decoder (static cache, chats in its slots) wherever it runs: a CPU dry run checks it too
    policy = LocalPolicy(model, device=DEVICE.type, dtype=dtype, static_cache=True)
    actor = LLMActor(policy, None, cfg, cfg.sampling("rollout"), want_logprobs=True, seed=3)
    # WebShop's first page takes a free-text search, so choices get their turn in the kitchen
    pool = (
        EnvListPool([KitchenEnv() for _ in range(4)])
        if "constrained" in agent
        else SerialPool("webshop", 4, "train", cfg)
    )
    try:
        trajs = run_episodes(actor, pool, pool.task_ids()[:4], max_steps=3)
    finally:
        pool.close()
    per_step = [
        [
            s.model_extra["response_logprobs"]
            for s in t.steps
            if (s.model_extra or {}).get("response_token_ids")
        ]
        for t in trajs
    ]
    # a window sample per step; a conversation packs its replies into one sample per chat segment (a
    # chat outgrowing agent.max_prompt_length is rebuilt: `context_reset`, as build_samples splits it)
    recorded = (
        [lp for t in per_step for lp in t]
        if agent == "window"
        else [seg for t in trajs for seg in _chat_segments(t)]
    )
    samples = build_samples(trajs, torch.ones(len(trajs)), policy.tokenizer)
    assert len(samples) == len(recorded) > 0
    with torch.no_grad():
        logp, mask, _ = sequence_logprobs(policy.model, samples, policy.tokenizer.pad_token_id, DEVICE)
    assert logp.device.type == DEVICE.type
    rescored = [logp[i][mask[i].bool()].tolist() for i in range(len(samples))]
    mean, worst = _gaps(recorded, rescored)
    if "constrained" in agent:
        assert all(s.valid for t in trajs for s in t.steps)
    gpu_record(mean_gap=mean, max_gap=worst, samples=len(samples))
    assert mean < tol_mean and worst < tol_max, (mean, worst)


def _chat_segments(traj) -> list[list[float]]:
    """A conversation's recorded log-probs, one list per segment between context rebuilds."""
    segments, current = [], []
    for step in traj.steps:
        extra = step.model_extra or {}
        if extra.get("error") or "context_ids" not in extra:
            continue
        if extra.get("context_reset") and current:
            segments.append(current)
            current = []
        current += extra.get("response_logprobs") or []
    return [s for s in [*segments, current] if s]


@pytest.mark.parametrize(("model", "dtype", "tol_mean", "tol_max"), MODELS)
def test_trie_choices_on_device_pick_the_best_whole_action(model, dtype, tol_mean, tol_max, gpu_record):
    """One tree-masked pass on the device scores each choice as scoring it alone does."""
    policy = LocalPolicy(model, device=DEVICE.type, dtype=dtype)
    prompts = [_msgs(t) for t in TASKS]
    gens = policy.generate(prompts, max_new_tokens=16, want_logprobs=True, choices=[ACTIONS] * len(TASKS))
    worst_pick, worst_sum = 0.0, 0.0
    for msgs, g in zip(prompts, gens, strict=True):
        assert g.text in ACTIONS
        end = g.token_ids[-1]
        ids = [[*policy.tokenizer(a, add_special_tokens=False)["input_ids"], end] for a in ACTIONS]
        totals = [
            sum(lp) for lp in teacher_forced_logprobs(policy, [policy.prompt_text(msgs)] * len(ids), ids)
        ]
        worst_pick = max(worst_pick, max(totals) - totals[ACTIONS.index(g.text)])
        worst_sum = max(worst_sum, abs(sum(g.logprobs) - totals[ACTIONS.index(g.text)]))
    gpu_record(pick_gap_nats=worst_pick, logprob_sum_gap=worst_sum, rows=len(TASKS))
    # a near tie may flip under bf16 rounding, never a clear choice
    assert worst_pick <= tol_max * 4 and worst_sum <= tol_max * 4, (worst_pick, worst_sum)


def test_sft_and_grpo_steps_on_cuda_change_only_the_adapter(tmp_path, gpu_record):
    cfg = _cfg("sft.epochs=1", "sft.batch_size=8")
    policy = load_training_policy(cfg, device=DEVICE)
    base_dtype = str(policy.model.get_base_model().model.embed_tokens.weight.dtype)
    lora_dtype = str(next(p.dtype for n, p in policy.model.named_parameters() if "lora_" in n))
    lora, base = _adapter_and_base(policy.model)
    res = train_sft(_demos(), cfg, tmp_path / "sft", policy=policy)
    assert res.steps == 1 and torch.isfinite(torch.tensor(res.final_loss))
    _assert_only_adapter_moved(policy.model, lora, base)

    tok = policy.tokenizer
    prompt = policy.prompt_text(_msgs(TASKS[0]))
    trajs = [
        Trajectory(task_description="t", task_category="Heat", total_reward=r, success=r > 0,
                   steps=[Step(observation="o", action=a, prompt_text=prompt,
                               response_token_ids=tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])])
        for r, a in ((10.0, ACTIONS[1]), (0.0, ACTIONS[0]))
    ]  # fmt: skip
    samples = build_samples(trajs, group_advantages(torch.tensor([10.0, 0.0]), torch.tensor([0, 0])), tok)
    opt = torch.optim.AdamW(
        [p for p in policy.model.parameters() if p.requires_grad], lr=cfg.rl.learning_rate
    )
    lora, base = _adapter_and_base(policy.model)
    stats = grpo_update(policy.model, opt, samples, cfg, make_accelerator(cfg), tok.pad_token_id)
    assert stats["update/skipped"] == 0.0 and stats["losses/ratio"] == pytest.approx(1.0, abs=1e-3)
    _assert_only_adapter_moved(policy.model, lora, base)
    gpu_record(base_dtype=base_dtype, lora_dtype=lora_dtype, sft_loss=res.final_loss,
               grpo_loss=stats["losses/loss"], grad_norm=stats["losses/grad_norm"])  # fmt: skip


def test_kv_caches_live_on_the_device(tiny_dev, gpu_record):
    tiny_dev.reset_prefix_cache()
    system = "You are an expert agent operating in the ALFRED Embodied Environment. " * 4
    for step in range(2):  # the second step reuses the first one's prefix
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": f"{TASKS[0]} step {step}"}]
        tiny_dev.generate([msgs], max_new_tokens=4)
    cache = tiny_dev.prefix_cache
    assert cache.entries and cache.stats()["reused_tokens"] > 0
    devices = {t.device.type for kv in cache.entries.values() for k, v in kv for t in (k, v)}
    assert devices == {DEVICE.type}
    ids = tiny_dev.tokenizer(tiny_dev.prompt_text(_msgs(TASKS[1])), add_special_tokens=False)["input_ids"]
    batch = prefill(tiny_dev.model, tiny_dev.tokenizer, [ids], None)
    assert batch.logits.device.type == DEVICE.type
    assert {layer.keys.device.type for layer in batch.cache.layers} == {DEVICE.type}
    gpu_record(prefix_entries=len(cache.entries), reused_tokens=cache.stats()["reused_tokens"])


_LOAD_ON_CPU = """
import json, sys, torch
from krill.config import load_config
from krill.models.local import LocalPolicy
from krill.train.checkpoint import latest_checkpoint, load_checkpoint, make_trainable
from krill.models.tiny import build_tiny_model
assert not torch.cuda.is_available()
out, ids = sys.argv[1], json.loads(sys.argv[2])
cfg = load_config(preset="tiny", overrides=["model.policy.device=cpu"])
model = make_trainable(build_tiny_model(0)[0], cfg.lora)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
state = load_checkpoint(latest_checkpoint(out), model, opt)
exported = LocalPolicy("tiny", adapter=out, device="cpu")
with torch.no_grad():
    a = model(input_ids=torch.tensor([ids])).logits[0, -1].tolist()
    b = exported.model(input_ids=torch.tensor([ids])).logits[0, -1].tolist()
print(json.dumps({"step": state["step"], "ckpt": a, "exported": b, "opt_states": len(opt.state_dict()["state"])}))
"""


def test_checkpoint_saved_on_gpu_loads_on_cpu(tmp_path, gpu_record):
    cfg = _cfg("model.policy.dtype=float32", "sft.epochs=1", "sft.batch_size=8")
    policy = load_training_policy(cfg, device=DEVICE)
    train_sft(_demos(), cfg, tmp_path / "sft", policy=policy)
    assert latest_checkpoint(tmp_path / "sft") is not None
    ids = policy.tokenizer(policy.prompt_text(_msgs(TASKS[0])), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        want = policy.model(input_ids=torch.tensor([ids], device=DEVICE)).logits[0, -1].float().cpu()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # a machine without a GPU
    proc = subprocess.run([sys.executable, "-c", _LOAD_ON_CPU, str(tmp_path / "sft"), json.dumps(ids)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["step"] == 1 and got["opt_states"] > 0
    for name in ("ckpt", "exported"):
        gap = (torch.tensor(got[name]) - want).abs().max().item()
        gpu_record(**{f"{name}_logit_max_gap": gap})
        assert gap < 1e-3, (name, gap)
