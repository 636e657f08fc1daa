"""Cold-start SFT: cross-entropy on the assistant tokens of skill-augmented demos, LoRA by default.

A plain loop (not TRL's SFTTrainer) so it is resumable step for step and runs unchanged under
`accelerate launch`. A demo is one agent step, `{"messages": [system, user(prompt), assistant(target)]}`
(`agent.context: window`), or a whole episode, `[system, user, assistant, user, assistant, ...]`
(`conversation`: one row, the loss on every assistant turn). Prompts are laid out exactly as the
policy lays them out at generation time (chat template + generation prompt, `ChatTokens`), and each
target is followed by the end-of-turn token the policy stops on, so what SFT teaches is what the
agent samples.

Outputs in `out_dir`: the adapter (or full model) in HF format, the tokenizer, `config.yaml`,
`demos.jsonl` (when built here), `metrics.jsonl` and `tb/` (TensorBoard: loss per optimizer step), `checkpoints/` (resume).
"""

from __future__ import annotations

import math
import random
import time
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import read_jsonl, write_json
from krill.models.chat_tokens import ChatTokens
from krill.models.logprobs import trailing_logprobs
from krill.progress import progress_bar
from krill.train import checkpoint as ckpt_io
from krill.train.metrics import MetricsLogger
from krill.train.setup import load_training_policy, make_accelerator, make_optimizer, pad_id, trim_metrics


@dataclass
class SftResult:
    out_dir: Path
    adapter_dir: Path
    steps: int
    examples: int
    tokens: int  # assistant (trained) tokens seen
    initial_loss: float
    final_loss: float
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    demos_path: Path | None = None
    resumed_from: int = 0  # the checkpoint step a resumed run continued from (0 = a fresh start)


# -- data ------------------------------------------------------------------------------------------
def tokenize_demo(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int, chat: ChatTokens | None = None
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one demo; labels are -100 except on the assistant replies (and the
    end-of-turn after each), so only what the agent writes is learnt.

    A demo is one agent step (system, user, assistant) or a whole episode (system, user, assistant,
    user, assistant, ...), laid out as `ChatTokens` lays out the policy's conversation at rollout time.
    Too long: a one-step demo loses the *beginning* of its prompt (the latest observation matters
    most); an episode is cut after its last reply that fits.
    """
    if not messages or messages[-1].get("role") != "assistant":
        raise KrillError("an SFT demo must end with an assistant message", where="messages[-1].role")
    ids, spans = (chat or ChatTokens(tokenizer)).conversation(messages)
    labels = [-100] * len(ids)
    for a, b in spans:
        labels[a:b] = ids[a:b]
    if len(ids) <= max_length:
        return ids, labels
    a, b = spans[0]
    if len(spans) > 1 and b <= max_length:
        end = max(e for _, e in spans if e <= max_length)
        return ids[:end], labels[:end]
    if b - a >= max_length:
        raise KrillError(f"an SFT target has {b - a} tokens, over sft.max_length={max_length}")
    prompt = ids[:a][-(max_length - (b - a)) :]
    return prompt + ids[a:b], [-100] * len(prompt) + ids[a:b]


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """LEFT-pad a micro-batch (input_ids, attention_mask, labels [b, L]), as the policy pads for generation.

    Left padding puts every answer at the end of its row, so the loss needs logits for the last few
    positions only (`logits_to_keep`), not [b, L, vocab] — the difference between 50 MB and 5 GB
    for SmolLM2's 49k vocabulary on 700-token prompts.
    """
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # [b, L]
    labels = torch.full((len(rows), width), -100, dtype=torch.long)  # [b, L]
    attn = torch.zeros((len(rows), width), dtype=torch.long)  # [b, L]
    for i, (x, y) in enumerate(rows):
        ids[i, width - len(x) :] = torch.tensor(x)
        labels[i, width - len(y) :] = torch.tensor(y)
        attn[i, width - len(x) :] = 1
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def summed_token_ce(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropy (−log p) over labelled tokens, and their count (left-padded batch)."""
    labels = batch["labels"]  # [b, L]
    labelled = (labels != -100).any(0).nonzero()
    k = labels.size(1) - int(labelled.min()) if labelled.numel() else 1  # trailing span holding every label
    k = min(k, labels.size(1) - 1)
    logp, _ = trailing_logprobs(model, batch["input_ids"], batch["attention_mask"], k)  # [b, k]
    mask = labels[:, labels.size(1) - k :] != -100  # [b, k]
    return -(logp * mask).sum(), int(mask.sum())


# -- the loop --------------------------------------------------------------------------------------
def train_sft(
    demos: list[dict[str, Any]],
    cfg: KrillConfig,
    out_dir: str | Path,
    init: str | Path | None = None,
    *,
    resume: bool = False,
    policy: Any = None,
) -> SftResult:
    """Fine-tune on `demos` (chat messages), save the adapter/model + tokenizer + config in `out_dir`."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    scfg = cfg.sft
    accel = make_accelerator(cfg)
    policy = policy if policy is not None else load_training_policy(cfg, init, accel.device)
    tok = policy.tokenizer
    chat = ChatTokens(tok)
    rows = [tokenize_demo(tok, d["messages"], scfg.max_length, chat) for d in demos]
    if not rows:
        raise KrillError("no SFT demos to train on")
    policy.model.train()
    model, optimizer = accel.prepare(policy.model, make_optimizer(policy.model, scfg.learning_rate))

    per_epoch = math.ceil(len(rows) / scfg.batch_size)
    total_steps = max(1, math.ceil(scfg.epochs * per_epoch))
    metrics = out_dir / "metrics.jsonl"
    start, losses = _resume(out_dir, resume, accel, model, optimizer)
    if start:
        trim_metrics(metrics, "step", start)
    elif metrics.exists():
        metrics.unlink()  # a fresh run: the old curve would mix with the new one

    # tokens trained on before the checkpoint count too: a resumed run reports the whole run's total
    tokens = sum(int(r.get("tokens", 0)) for r in read_jsonl(metrics)) if start else 0
    logger = MetricsLogger(out_dir, index_key="step", enabled=accel.is_main_process,
                           report_to=cfg.train.report_to, run_config=cfg.to_public_dict())  # fmt: skip
    with progress_bar("sft", total_steps) as bar, closing(logger):
        bar.advance(start)
        for step in range(start, total_steps):
            batch_rows = _batch_for_step(rows, step, per_epoch, scfg.batch_size, scfg.seed)
            # under `accelerate launch` each process takes its share of the batch; DDP averages the grads
            batch_rows = batch_rows[accel.process_index :: accel.num_processes] or batch_rows[:1]
            loss, n_tok = _optimizer_step(model, optimizer, accel, batch_rows, scfg.micro_batch_size, tok)
            losses.append(loss)
            tokens += n_tok
            logger.log(step + 1, {"epoch": (step + 1) / per_epoch, "loss": loss, "tokens": n_tok})
            bar.advance()
            bar.status(f"loss {loss:.3f}")
            done = step + 1
            if done % scfg.checkpoint_every == 0 or done % per_epoch == 0 or done == total_steps:
                ckpt_io.save_checkpoint(
                    out_dir, done, accel.unwrap_model(model), optimizer, {"losses": losses}
                )

    model.eval()
    if accel.is_main_process:
        ckpt_io.export_model(accel.unwrap_model(model), tok, out_dir, cfg)
    return SftResult(out_dir, out_dir, total_steps, len(rows), tokens, losses[0], losses[-1], losses,
                     time.perf_counter() - t0, resumed_from=start)  # fmt: skip


def _resume(out_dir: Path, resume: bool, accel: Any, model: Any, optimizer: Any) -> tuple[int, list[float]]:
    """(the step to start from, the losses so far): the latest checkpoint's when resuming, else (0, [])."""
    state = ckpt_io.resume_checkpoint(out_dir, accel.unwrap_model(model), optimizer) if resume else None
    if state is None:
        return 0, []
    return state["step"], list(state["losses"])


def _batch_for_step(rows: list, step: int, per_epoch: int, batch_size: int, seed: int) -> list:
    """The examples of optimizer step `step`: epoch-seeded shuffles, so a resumed run sees the same order."""
    epoch, k = divmod(step, per_epoch)
    order = list(range(len(rows)))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return [rows[i] for i in order[k * batch_size : (k + 1) * batch_size]]


def _optimizer_step(
    model: Any, optimizer: Any, accel: Any, batch_rows: list, micro: int, tok: Any
) -> tuple[float, int]:
    """One update: micro-batches accumulate sum-CE / (assistant tokens of the whole batch) = the batch's token mean."""
    n_tok = sum(sum(1 for y in labels[1:] if y != -100) for _, labels in batch_rows)
    pad = pad_id(tok)
    chunks = [batch_rows[i : i + micro] for i in range(0, len(batch_rows), micro)]
    total = 0.0
    for i, chunk in enumerate(chunks):
        batch = {k: v.to(accel.device) for k, v in collate(chunk, pad).items()}
        sync = accel.no_sync(model) if i < len(chunks) - 1 else nullcontext()
        with sync, accel.autocast():
            loss_sum, _ = summed_token_ce(model, batch)
            loss = loss_sum / max(n_tok, 1)
            accel.backward(loss)
        total += loss.item()
    accel.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total, n_tok


# -- front door ------------------------------------------------------------------------------------
def run_sft(
    cfg: KrillConfig,
    bank: Any,
    out_dir: str | Path,
    demos_path: str | Path | None = None,
    *,
    num_examples: int | None = None,
    init: str | Path | None = None,
    resume: bool = False,
) -> SftResult:
    """Build (or load) the demo set, save it as `out_dir/demos.jsonl`, train, and return the result."""
    from krill.runlock import run_lock
    from krill.runrecord import record_config
    from krill.train.demos import build_sft_demos, load_demo_source, save_demos

    out_dir = Path(out_dir)
    n = num_examples or cfg.sft.num_examples
    with run_lock(out_dir, "sft"):
        record_config(cfg, out_dir, check=resume)  # a resume with other settings is refused here
        if demos_path is not None:
            demos = load_demo_source(demos_path, bank, cfg, n)
        else:
            demos = build_sft_demos(bank, cfg, source="expert", n=n)
        saved = save_demos(demos, out_dir / "demos.jsonl")
        result = train_sft(demos, cfg, out_dir, init=init, resume=resume)
        result.demos_path = saved
        write_json(out_dir / "sft_summary.json", _summary(result))
    return result


def _summary(r: SftResult) -> dict[str, Any]:
    return {
        "steps": r.steps,
        "examples": r.examples,
        "tokens": r.tokens,
        "initial_loss": r.initial_loss,
        "final_loss": r.final_loss,
        "wall_s": round(r.wall_s, 2),
        "resumed_from_step": r.resumed_from,
    }
