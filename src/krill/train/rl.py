"""GRPO for the skill-augmented agent (SkillRL §3.4): roll out groups, score, update the LoRA policy.

One iteration (recipe shape: setup → rollout → advantages → update → log → checkpoint):
1. pick `rl.batch_size / rl.group_size` train tasks (seeded by iteration), G copies each;
2. roll out with `LLMActor` at `cfg.sampling("rollout")` (`rl.temperature`) (skills retrieved from the current bank);
3. reward R_i = episode return − invalid_action_penalty × #invalid actions; A_i = group z-score;
4. every LLM step of trajectory i is one sample (its prompt → its response tokens) carrying A_i;
   with `agent.context: conversation` the whole trajectory is one sample (its chat as the decoder
   saw it, every reply's tokens carrying A_i), scored in one forward pass;
5. old log-probs are RECOMPUTED with the same model, same mode and dtype, right before the update
   (not the sampler's): the sampler may batch/pad differently or be a remote server, and a ratio
   that starts at exactly 1 is what the clipped surrogate assumes; reference log-probs come from the
   policy RL started from (the SFT adapter when `--init` gives one): its trainable weights, kept
   aside once, are swapped in for the reference pass (no second model copy);
6. `grpo_loss` over token-budgeted micro-batches (`rl.micro_batch_tokens`) with accumulation, so a
   6,000-token prompt fits; the gradient is the exact token mean of the whole iteration.

Samples from zero-variance groups (all won / all lost) have A = 0: they would only add the KL pull
toward the reference, so they are dropped from the update (counted in `groups/zero_variance`), and an
iteration with no informative group skips the update (`update/skipped`).
"""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import atomic_write_bytes, atomic_write_text, read_jsonl, write_jsonl
from krill.progress import progress_bar
from krill.schema import SkillBank, Trajectory
from krill.train import checkpoint as ckpt_io
from krill.train.grpo import group_advantages, grpo_loss, token_entropy, zero_variance_groups
from krill.train.metrics import MetricsLogger, iteration_metrics
from krill.train.sft import load_training_policy, make_accelerator

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """Token ids the policy saw and wrote, scored in one pass; `action_mask` 1 on its own tokens.

    Window mode: one agent step (prompt → response). Conversation mode: a whole episode (its
    contexts and replies as the decoder saw them), or the part since its chat was last cut.
    Every action token carries `advantage`, the trajectory's A_i.
    """

    ids: list[int]
    action_mask: list[int]
    advantage: float

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def scored_span(self) -> int:
        """Positions from the first action token to the end: the logits a forward pass must keep."""
        return len(self.ids) - self.action_mask.index(1) if 1 in self.action_mask else 0


@dataclass
class RlResult:
    out_dir: Path
    adapter_dir: Path
    bank_path: Path
    iterations: int
    metrics: list[dict[str, Any]] = field(default_factory=list)


# -- rollout → samples ---------------------------------------------------------------------------
def _train_tasks(available: list[str], cfg: KrillConfig) -> list[str]:
    """The train split's tasks, or `rl.tasks` (each must be one of them)."""
    if not available:
        raise KrillError(f"the {cfg.env.name} train split has no tasks")
    if not cfg.rl.tasks:
        return list(available)
    known = set(available)
    for i, task in enumerate(cfg.rl.tasks):
        if task not in known:
            raise KrillError(f"rl.tasks[{i}]: {task!r} is not a task of the {cfg.env.name} train split")
    return list(cfg.rl.tasks)


def pick_tasks(task_ids: list[str], iteration: int, n: int, seed: int) -> list[str]:
    """The tasks of one iteration: a seeded sample, the same whether the run was resumed or not."""
    rng = random.Random(f"krill-rl:{seed}:{iteration}")
    return rng.sample(task_ids, min(n, len(task_ids)))


def shaped_rewards(trajs: list[Trajectory], penalty: float) -> torch.Tensor:
    """R_i = episode return − penalty × number of invalid actions."""
    return torch.tensor([t.total_reward - penalty * t.num_invalid for t in trajs], dtype=torch.float32)


def build_samples(trajs: list[Trajectory], advantages: torch.Tensor, tokenizer: Any) -> list[Sample]:
    """Samples of every trajectory with A_i ≠ 0: one per episode segment when its steps recorded
    appended context ids (conversation mode), else one per step from its prompt text."""
    out = []
    for traj, adv in zip(trajs, advantages.tolist(), strict=True):
        if adv != 0.0:
            out.extend(trajectory_samples(traj, adv, tokenizer))
    return out


def trajectory_samples(traj: Trajectory, advantage: float, tokenizer: Any) -> list[Sample]:
    """The sequences of one trajectory: its steps' contexts followed by their responses."""
    out: list[Sample] = []
    ids: list[int] = []
    mask: list[int] = []
    for step in traj.steps:
        extra = step.model_extra or {}
        resp = list(extra.get("response_token_ids") or [])
        if extra.get("error"):
            continue
        if "context_ids" in extra:  # conversation: the context grows by appending, until a rebuild
            if extra.get("context_reset") and ids:
                out.append(Sample(ids, mask, advantage))
                ids, mask = [], []
            context = list(extra["context_ids"])
        elif resp and extra.get("prompt_text"):  # window (or a remote server): one prompt per step
            context = tokenizer(extra["prompt_text"], add_special_tokens=False)["input_ids"]
            out.append(Sample([*context, *resp], [0] * len(context) + [1] * len(resp), advantage))
            continue
        else:
            continue
        ids += [*context, *resp]
        mask += [0] * len(context) + [1] * len(resp)
    if ids:
        out.append(Sample(ids, mask, advantage))
    return [s for s in out if 1 in s.action_mask]


def token_budget_batches(samples: list[Sample], budget: int) -> list[list[Sample]]:
    """Pack samples (sorted by length) into micro-batches with count × longest ≤ budget tokens.

    A sample longer than the budget gets a micro-batch of its own (one sequence must always fit).
    """
    batches: list[list[Sample]] = []
    cur: list[Sample] = []
    for s in sorted(samples, key=len):
        if cur and (len(cur) + 1) * len(s) > budget:
            batches.append(cur)
            cur = []
        cur.append(s)
    if cur:
        batches.append(cur)
    return batches


def sequence_logprobs(model: Any, batch: list[Sample], pad_id: int, device: Any, *, entropy: bool = False):
    """Log-probs of each sample's tokens from its first action token on: (logp [b, R], mask [b, R],
    entropy [b, R] | None); `mask` is the samples' action mask over those positions.

    Left padding aligns every row's end, so only the last R+1 positions need logits (R = the longest
    span from a first action token to the end: the response in window mode, the episode's replies
    and the observations between them in conversation mode).
    """
    width = max(len(s) for s in batch)
    ids = torch.tensor([[pad_id] * (width - len(s)) + s.ids for s in batch], device=device)  # [b, L]
    attn = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in batch], device=device)  # [b, L]
    positions = (attn.cumsum(-1) - 1).clamp(min=0)  # [b, L]
    R = max(s.scored_span for s in batch)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=positions, logits_to_keep=R + 1).logits
    logits = logits[:, :-1].float()  # [b, R, V]: position t predicts token t of the trailing span
    targets = ids[:, width - R :]  # [b, R]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)  # [b, R]
    mask = torch.tensor([([0] * R + s.action_mask)[-R:] for s in batch], device=device).float()  # [b, R]
    ent = token_entropy(logits.detach()) if entropy else None
    return logp, mask, ent


# -- the update --------------------------------------------------------------------------------------
@contextmanager
def reference_weights(model: Any, reference: dict[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily load the reference policy's trainable weights (LoRA tensors) into `model`."""
    params = dict(model.named_parameters())
    current = {name: params[name].detach().clone() for name in reference}
    with torch.no_grad():
        for name, value in reference.items():
            params[name].copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, value in current.items():
                params[name].copy_(value)


def reference_state(model: Any, out_dir: Path, resume: bool, accel: Any) -> dict[str, torch.Tensor]:
    """π_ref's trainable weights: the starting policy's, saved once in OUT/reference.safetensors."""
    from safetensors.torch import load_file
    from safetensors.torch import save as st_save

    path = out_dir / "reference.safetensors"
    if resume and path.exists():
        return {k: v.to(accel.device) for k, v in load_file(str(path)).items()}
    state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if accel.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, st_save({k: v.cpu().contiguous() for k, v in state.items()}))
    return state


def grpo_update(
    model: Any,
    optimizer: Any,
    samples: list[Sample],
    cfg: KrillConfig,
    accel: Any,
    pad_id: int,
    reference: dict[str, torch.Tensor] | None = None,
) -> dict:
    """`rl.ppo_epochs` passes of clipped-surrogate + KL over the samples; one optimizer step per pass.

    `reference` (trainable weights of π_ref) defaults to "the adapter disabled" (the base model)."""
    rl = cfg.rl
    inner = accel.unwrap_model(model)
    informative = accel.reduce(torch.tensor(float(len(samples)), device=accel.device), "sum").item()
    if informative == 0:
        return {"update/skipped": 1.0}
    batches = token_budget_batches(samples, rl.micro_batch_tokens) or [[]]
    total_tokens = sum(sum(s.action_mask) for s in samples)
    adapter_off = getattr(inner, "disable_adapter", None)
    if reference is not None:
        adapter_off = partial(reference_weights, inner, reference)
    if adapter_off is None and rl.kl_coef > 0:
        raise KrillError(
            "the RL reference is the model with its LoRA adapter disabled; with full fine-tuning set rl.kl_coef=0"
        )
    model.train()
    with torch.no_grad():  # π_old and π_ref once per iteration, same mode and dtype as the update
        olds, refs = [], []
        for b in batches:
            with accel.autocast():
                olds.append(sequence_logprobs(inner, b, pad_id, accel.device)[0] if b else None)
                if b and adapter_off is not None:
                    with adapter_off():
                        refs.append(sequence_logprobs(inner, b, pad_id, accel.device)[0])
                else:
                    refs.append(olds[-1])
    sums: dict[str, float] = {}
    for _ in range(rl.ppo_epochs):
        for k, (b, old, ref) in enumerate(zip(batches, olds, refs, strict=True)):
            sync = nullcontext() if k == len(batches) - 1 else accel.no_sync(model)
            with sync, accel.autocast():
                if not b:  # this process has nothing to learn; still join DDP's gradient all-reduce
                    accel.backward(sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0)
                    continue
                logp, mask, ent = sequence_logprobs(model, b, pad_id, accel.device, entropy=True)
                adv = torch.tensor([s.advantage for s in b], device=accel.device)  # [b]
                loss, st = grpo_loss(logp, old, ref, adv, mask, rl.clip_ratio, rl.kl_coef)
                weight = st.tokens.item() / max(
                    total_tokens, 1
                )  # micro-batch token mean → iteration token mean
                accel.backward(loss * weight)
            for name, v in (("losses/loss", st.loss), ("losses/policy_loss", st.policy_loss), ("losses/kl", st.kl),
                            ("losses/clip_frac", st.clip_frac), ("losses/approx_kl", st.approx_kl),
                            ("losses/ratio", st.ratio_mean)):  # fmt: skip
                sums[name] = sums.get(name, 0.0) + v.item() * weight / rl.ppo_epochs
            sums["losses/entropy"] = sums.get("losses/entropy", 0.0) + (
                (ent * mask).sum().item() / max(total_tokens, 1) / rl.ppo_epochs
            )
        grad_norm = accel.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], rl.max_grad_norm
        )
        sums["losses/grad_norm"] = sums.get("losses/grad_norm", 0.0) + float(grad_norm) / rl.ppo_epochs
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    if accel.num_processes > 1:  # log the mean over processes (each saw its own task shard)
        keys = sorted(sums)
        vals = accel.reduce(torch.tensor([sums[k] for k in keys], device=accel.device), "mean").tolist()
        sums = dict(zip(keys, vals, strict=True))
    return {
        **sums,
        "update/skipped": 0.0,
        "tokens/trained": float(total_tokens),
        "update/micro_batches": float(len(batches)),
    }


# -- the loop ------------------------------------------------------------------------------------
def run_rl(
    cfg: KrillConfig,
    bank: SkillBank,
    out_dir: str | Path,
    init: str | Path | None = None,
    resume: bool = False,
    evolve_hook: Any = None,
    *,
    policy: Any = None,
) -> RlResult:
    """GRPO iterations from `init` (an SFT adapter) or the base model; checkpoints make it resumable."""
    from krill.envs.pool import make_pool
    from krill.formats.banks import load_bank, save_bank

    out_dir = Path(out_dir)
    rl = cfg.rl
    accel = make_accelerator(cfg)
    tcfg = cfg.model_copy(deep=True)
    if cfg.model.policy.backend != "local":  # rollouts on a server; the weights we train live here
        tcfg.model.policy.backend, tcfg.model.policy.model = "local", rl.train_model or cfg.model.policy.model
    if init is not None and not Path(init).exists():
        raise KrillError("--init folder not found", path=init)
    policy = policy if policy is not None else load_training_policy(tcfg, init, accel.device)
    reference = reference_state(policy.model, out_dir, resume, accel) if rl.kl_coef > 0 else None
    params = [p for p in policy.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=rl.learning_rate, weight_decay=0.0)
    model, optimizer = accel.prepare(policy.model, optimizer)
    tok = policy.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    start = 0
    last = ckpt_io.latest_checkpoint(out_dir) if resume else None
    if last is not None:
        state = ckpt_io.load_checkpoint(last, accel.unwrap_model(model), optimizer)
        start, bank = state["step"], load_bank(state["bank_path"])
        log.info("rl: resuming from %s (iteration %d of %d)", last, start, rl.iterations)
    _trim_metrics(out_dir / "metrics.jsonl", start)
    logger = MetricsLogger(out_dir, enabled=accel.is_main_process)
    rollout_policy = _rollout_policy(cfg, policy, out_dir, start, accel)
    if accel.is_main_process:
        write_run_config(cfg, out_dir)

    n_tasks = max(1, rl.batch_size // rl.group_size)
    pool = make_pool(cfg, "train", max(1, min(cfg.model.policy.batch_size, n_tasks * rl.group_size)))
    all_metrics: list[dict[str, Any]] = []
    try:
        train_tasks = _train_tasks(pool.task_ids(), cfg)
        retriever = _retriever(bank, cfg)
        learner = _Learner(cfg, accel, model, optimizer, tok, pad_id, reference, pool, train_tasks, n_tasks)
        with progress_bar("rl", rl.iterations) as bar:
            bar.advance(start)
            for it in range(start, rl.iterations):
                row, trajs = _iteration(learner, it, rollout_policy, retriever)
                if evolve_hook is not None and (it + 1) % cfg.evolution.validation_interval == 0:
                    bank = _call_hook(evolve_hook, it + 1, policy, bank, trajs) or bank
                    retriever = _retriever(bank, cfg)
                    row["bank/size"] = float(len(bank))
                if rollout_policy is not policy:
                    rollout_policy = _rollout_policy(cfg, policy, out_dir, it + 1, accel)
                logger.log(it + 1, row)
                all_metrics.append(row)
                bar.advance()
                bar.status(
                    f"reward {row['rollout/reward']:.2f} succ {row['charts/success_rate']:.2f} bank {len(bank)}"
                )
                if accel.is_main_process and ((it + 1) % rl.checkpoint_every == 0 or it + 1 == rl.iterations):
                    bank_path = out_dir / "banks" / f"bank_iter_{it + 1:04d}.json"
                    save_bank(bank, bank_path)
                    ckpt_io.save_checkpoint(out_dir, it + 1, accel.unwrap_model(model), optimizer,
                                            {"iteration": it + 1, "bank_path": str(bank_path), "config": cfg.to_public_dict()})  # fmt: skip
                accel.wait_for_everyone()
    finally:
        pool.close()
        logger.close()

    adapter_dir = out_dir / "adapter"
    bank_path = out_dir / "bank.json"
    if accel.is_main_process:
        ckpt_io.export_model(accel.unwrap_model(model), tok, adapter_dir, cfg)
        save_bank(bank, bank_path)
    return RlResult(out_dir, adapter_dir, bank_path, rl.iterations, all_metrics)


@dataclass
class _Learner:
    """What stays fixed across iterations: the trained model and its optimizer, π_ref, the task pool."""

    cfg: KrillConfig
    accel: Any
    model: Any
    optimizer: Any
    tok: Any
    pad_id: int
    reference: dict[str, torch.Tensor] | None
    pool: Any
    train_tasks: list[str]
    n_tasks: int


def _iteration(
    learner: _Learner, it: int, rollout_policy: Any, retriever: Any
) -> tuple[dict, list[Trajectory]]:
    """Roll out this process's share of the iteration's groups, then update; returns (metrics, trajectories)."""
    from krill.agent.actors import LLMActor
    from krill.agent.rollout import run_episodes

    cfg, accel, model, tok = learner.cfg, learner.accel, learner.model, learner.tok
    rl = cfg.rl
    t0 = time.perf_counter()
    tasks = pick_tasks(learner.train_tasks, it, learner.n_tasks, rl.seed)
    tasks = tasks[accel.process_index :: accel.num_processes]
    task_list = [t for t in tasks for _ in range(rl.group_size)]
    group_ids = torch.tensor([i // rl.group_size for i in range(len(task_list))])
    actor = LLMActor(
        rollout_policy,
        retriever,
        cfg,
        cfg.sampling("rollout"),
        want_logprobs=True,
        seed=(rl.seed * 1_000_003 + it) * 64 + accel.process_index,
    )
    model.eval()
    trajs = (
        run_episodes(
            actor, learner.pool, task_list, cfg, max_steps=rl.max_steps, seed=rl.seed + it, split="train"
        )
        if task_list
        else []
    )
    t1 = time.perf_counter()
    rewards = shaped_rewards(trajs, rl.invalid_action_penalty)
    adv = group_advantages(rewards, group_ids) if trajs else torch.zeros(0)
    samples = build_samples(trajs, adv, tok)
    upd = grpo_update(model, learner.optimizer, samples, cfg, accel, learner.pad_id, learner.reference)
    if upd["update/skipped"] == 0.0 and hasattr(rollout_policy, "reset_prefix_cache"):
        rollout_policy.reset_prefix_cache()  # cached prompt KV states belong to the old weights
    t2 = time.perf_counter()
    row = iteration_metrics(
        trajs, rewards, adv, zero_variance_groups(rewards, group_ids) if trajs else 0, accel
    )
    row.update(upd)
    row.update({"time/rollout_s": t1 - t0, "time/update_s": t2 - t1, "time/iteration_s": t2 - t0})
    return row, trajs


def _retriever(bank: SkillBank, cfg: KrillConfig) -> Any:
    from krill.train.demos import make_retriever

    return make_retriever(bank, cfg)


def _call_hook(
    hook: Any, iteration: int, policy: Any, bank: SkillBank, trajs: list[Trajectory]
) -> SkillBank | None:
    """`hook(iteration, policy, bank)`; hooks that take `recent` also get this iteration's trajectories."""
    if "recent" in inspect.signature(hook).parameters:
        return hook(iteration, policy, bank, recent=trajs)
    return hook(iteration, policy, bank)


def _trim_metrics(path: Path, iteration: int) -> None:
    """Keep only rows up to the checkpointed iteration (a crash may have logged a later one)."""
    if not path.exists():
        return
    rows = [r for r in read_jsonl(path, repair_tail=True) if r.get("iteration", 0) <= iteration]
    write_jsonl(path, rows)


# -- rollouts on an OpenAI-compatible server (vLLM) ----------------------------------------------
def _rollout_policy(cfg: KrillConfig, policy: Any, out_dir: Path, iteration: int, accel: Any) -> Any:
    """The local policy itself, or (backend openai) the server after loading the latest adapter into it."""
    if cfg.model.policy.backend == "local":
        return policy
    from krill.train.remote import RemoteRollouts

    return RemoteRollouts.after_update(cfg, policy, out_dir, iteration, accel)


def write_run_config(cfg: KrillConfig, out_dir: Path) -> None:
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(cfg.to_public_dict(), sort_keys=False))
