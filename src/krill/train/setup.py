"""What SFT and RL set up alike: the Accelerator, the trainable policy, its optimizer, metrics files.

The recipes (`krill.train.sft`, `krill.train.rl`) call these and nothing else to get going, so a run
under `accelerate launch` (DDP/FSDP/DeepSpeed) places, wraps and resumes both phases the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import read_jsonl, write_jsonl
from krill.train import checkpoint as ckpt_io


def make_accelerator(cfg: KrillConfig) -> Any:
    """One Accelerator for SFT and RL: device placement, DDP under `accelerate launch`, bf16 on capable GPUs."""
    from accelerate import Accelerator

    device = cfg.model.policy.device
    cpu = device == "cpu" or not torch.cuda.is_available()
    dtype = cfg.model.policy.dtype
    bf16 = not cpu and dtype in ("auto", "bfloat16") and torch.cuda.is_bf16_supported()
    return Accelerator(cpu=cpu, mixed_precision="bf16" if bf16 else "no")


def load_training_policy(cfg: KrillConfig, init: str | Path | None = None, device: Any = None) -> Any:
    """The policy (`.model`, `.tokenizer`, `.generate`) with its model made trainable (LoRA / full / init).

    `init` (default `model.policy.adapter`) is an adapter to keep training or a fully fine-tuned model
    folder; `device` (the Accelerator's) puts each `accelerate launch` process on its own GPU.
    """
    from krill.models import build_policy

    init = init if init is not None else cfg.model.policy.adapter
    changes: dict[str, Any] = {"model.policy.adapter": None}  # loaded below as trainable, not frozen
    if device is not None and cfg.model.policy.device == "auto":
        changes["model.policy.device"] = str(device)
    if init is not None and not ckpt_io.is_adapter_dir(init):
        if not (Path(init) / "config.json").exists():
            raise KrillError(
                "not a model or adapter folder (no adapter_config.json or config.json)", path=init
            )
        changes["model.policy.model"] = str(init)  # a fully fine-tuned model saved by an earlier run
        init = None
    policy = build_policy(cfg.override(changes))
    policy.model = ckpt_io.make_trainable(policy.model, cfg.lora, init, seed=cfg.sft.seed)
    return policy


def weights_config(cfg: KrillConfig) -> KrillConfig:
    """The config of the weights trained here: rollouts may come from a server (backend openai), but
    the trained copy is always local (`rl.train_model`, default the served model's name)."""
    if cfg.model.policy.backend == "local":
        return cfg
    return cfg.override(
        {"model.policy.backend": "local", "model.policy.model": cfg.rl.train_model or cfg.model.policy.model}
    )


def make_optimizer(model: Any, learning_rate: float) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters (the LoRA adapter by default), no weight decay."""
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.0
    )


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def trim_metrics(path: Path, key: str, upto: int) -> None:
    """Keep the rows with `key` ≤ the checkpointed step: a killed run may have logged later ones (and a
    torn last line) that the resumed run is about to log again."""
    if path.exists():
        write_jsonl(path, [r for r in read_jsonl(path, repair_tail=True) if r.get(key, 0) <= upto])
