"""Models and training state on disk: trainable-model setup (LoRA or full), HF-format saves, resumable checkpoints.

Layout of a checkpoint folder (`<run>/checkpoints/step_000012/`):
    weights.safetensors   the trainable weights (the LoRA adapter, or the whole model when full FT)
    optimizer.pt          optimizer state (torch.save; loaded with weights_only=True)
    state.json            step/iteration, RNG states, anything the loop adds (bank path, config)
and `<run>/checkpoints/latest.json` points at the newest complete one. The pointer is written last
and atomically, so a kill mid-save leaves the previous checkpoint as "latest".
"""

from __future__ import annotations

import io
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from krill.config import KrillConfig, LoraConfig
from krill.errors import KrillError
from krill.io import atomic_write_bytes, read_json, write_json

KEEP_CHECKPOINTS = 2


# -- the trainable model ---------------------------------------------------------------------------
def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def make_trainable(model: Any, lora: LoraConfig, init: str | Path | None = None, *, seed: int = 0) -> Any:
    """Return `model` ready to train: `init`'s adapter loaded trainable, a fresh LoRA, or all weights (full FT).

    A fresh LoRA's A matrices are drawn from `seed` (not the global RNG), so two runs with the same
    seed start from the same adapter whatever ran before them in the process.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import PeftModel, get_peft_model

    if init is not None and is_adapter_dir(init):
        if isinstance(model, PeftModel):  # the policy already loaded an adapter: start from init's weights
            load_trainable_weights(model, _read_adapter_weights(Path(init)))
            _set_lora_trainable(model)
            return model
        return PeftModel.from_pretrained(model, str(init), is_trainable=True)
    if isinstance(model, PeftModel):
        _set_lora_trainable(model)
        return model
    if not lora.enabled:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    targets = [t for t in lora.target_modules if any(n.endswith(t) for n, _ in model.named_modules())]
    if not targets:
        raise KrillError(
            f"none of lora.target_modules {lora.target_modules} is a module of the model",
            where="lora.target_modules",
        )
    peft_cfg = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, peft_cfg)


def _set_lora_trainable(model: Any) -> None:
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)


def _read_adapter_weights(path: Path) -> dict[str, torch.Tensor]:
    from peft.utils import load_peft_weights

    return load_peft_weights(str(path), device="cpu")


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The weights training changes, by parameter name (CPU copies; shared storage unshared)."""
    return {
        n: p.detach().to("cpu").clone().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }


def load_trainable_weights(model: Any, weights: dict[str, torch.Tensor]) -> None:
    """Copy `weights` into the model's parameters by name; a missing name is an error, not a silent skip."""
    from peft import PeftModel, set_peft_model_state_dict

    params = dict(model.named_parameters())
    if all(n in params for n in weights):
        with torch.no_grad():
            for n, w in weights.items():
                params[n].copy_(w.to(params[n].device, params[n].dtype))
        return
    if isinstance(model, PeftModel):  # PEFT's on-disk names (no adapter name) → its loader maps them
        set_peft_model_state_dict(model, weights)
        return
    missing = sorted(n for n in weights if n not in params)[:3]
    raise KrillError(f"checkpoint weights do not match the model (e.g. {missing})")


# -- HF-format export ----------------------------------------------------------------------------
def save_pretrained_atomic(obj: Any, out_dir: str | Path) -> list[str]:
    """`obj.save_pretrained` (model, adapter or tokenizer) into a temp dir, then each file copied atomically."""
    out_dir = Path(out_dir)
    names = []
    with tempfile.TemporaryDirectory(prefix=".krill-save-") as tmp:
        obj.save_pretrained(tmp)
        for f in sorted(Path(tmp).rglob("*")):
            if f.is_file():
                rel = f.relative_to(tmp)
                atomic_write_bytes(out_dir / rel, f.read_bytes())
                names.append(str(rel))
    return names


def export_model(model: Any, tokenizer: Any, out_dir: str | Path, cfg: KrillConfig) -> Path:
    """Write the adapter (or the full model) in HF format + tokenizer + the config used (config.yaml)."""
    out_dir = Path(out_dir)
    save_pretrained_atomic(model, out_dir)
    save_pretrained_atomic(tokenizer, out_dir)
    write_run_config(cfg, out_dir, check=False)  # describes what was just exported
    return out_dir


def write_run_config(cfg: KrillConfig, out_dir: str | Path, *, check: bool = True,
                     may_grow: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """`out_dir/config.yaml`: the effective config of a run or export (env var names, never keys);
    a resume whose settings differ from the recorded ones is refused (`krill.runrecord`)."""
    from krill.runrecord import record_config

    return record_config(cfg, out_dir, check=check, may_grow=may_grow)


# -- resumable checkpoints -----------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as JSON-safe values."""
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    out = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": np_state,
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    np_state["state"] = {**np_state["state"], "key": np.array(np_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(np_state)
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def save_checkpoint(
    run_dir: str | Path, step: int, model: Any, optimizer: Any, state: dict[str, Any]
) -> Path:
    """Write checkpoint `step` (weights, optimizer, state + RNG), then point latest.json at it."""
    root = Path(run_dir) / "checkpoints"
    ckpt = root / f"step_{step:06d}"
    atomic_write_bytes(ckpt / "weights.safetensors", st_save(trainable_state(model)))
    buf = io.BytesIO()
    torch.save(optimizer.state_dict(), buf)
    atomic_write_bytes(ckpt / "optimizer.pt", buf.getvalue())
    write_json(ckpt / "state.json", {**state, "step": step, "rng": rng_state()})
    write_json(root / "latest.json", {"step": step, "dir": ckpt.name})
    for old in sorted(root.glob("step_*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return ckpt


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    pointer = Path(run_dir) / "checkpoints" / "latest.json"
    if not pointer.exists():
        return None
    ckpt = pointer.parent / read_json(pointer)["dir"]
    if not (ckpt / "state.json").exists():
        raise KrillError("latest.json points at a missing checkpoint", path=ckpt)
    return ckpt


def load_checkpoint(ckpt: str | Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Restore weights, optimizer and RNG from a checkpoint folder; returns its state dict.

    Every file is read and checked before anything is applied, so a damaged checkpoint raises
    `KrillError` and leaves the model and optimizer as they were."""
    ckpt = Path(ckpt)
    try:
        weights = st_load((ckpt / "weights.safetensors").read_bytes())
        # map to CPU: a checkpoint saved on a GPU must load on a machine without one;
        # load_state_dict then moves each state tensor to its parameter's device
        raw = io.BytesIO((ckpt / "optimizer.pt").read_bytes())
        opt_state = torch.load(raw, weights_only=True, map_location="cpu")
        state = read_json(ckpt / "state.json")
        if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "rng" not in state:
            raise ValueError("state.json lacks its step or RNG states")
    except KrillError:
        raise
    except Exception as exc:  # truncated safetensors, a garbage pickle, a wrong type: all "damaged"
        raise KrillError(f"damaged checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
                         path=ckpt) from None  # fmt: skip
    load_trainable_weights(model, weights)
    optimizer.load_state_dict(opt_state)
    set_rng_state(state["rng"])
    return state


def resume_checkpoint(run_dir: str | Path, model: Any, optimizer: Any) -> dict[str, Any] | None:
    """Load the newest usable checkpoint of a run (None when there is none): a damaged one is passed
    over with a notice for the one before it (a kill or a full disk can damage the newest)."""
    import logging

    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    for ckpt in sorted(root.glob("step_*"), reverse=True):
        try:
            return load_checkpoint(ckpt, model, optimizer)
        except KrillError as exc:
            logging.getLogger(__name__).warning("%s; resuming from the checkpoint before it", exc)
    return None
