"""`krill export RUN OUT`: the trained agent as a bundle that leaves the machine.

    OUT/adapter/      the LoRA adapter (PEFT), `base_model_name_or_path` = the base model's hub id
                      (not this machine's cache path), with the tokenizer and a model card
    OUT/merged/       with `merge=True`: base + adapter folded into one transformers model, which vLLM
                      (`vllm serve OUT/merged`) and any OpenAI-compatible server can load as it is
    OUT/bank.json     the final skill bank the policy was trained and evaluated with
    OUT/config.yaml   the run's recorded settings: prompt mode, skill retrieval (K, δ), decoding, step cap
    OUT/README.md     the model card: what was trained on what, the settings, the held-out results

The bundle is itself a run folder (`krill.train.runs`): `krill eval --model OUT` evaluates it with its
own settings, adapter and bank.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from krill.errors import KrillError
from krill.io import atomic_write_text, read_json, read_text, write_json
from krill.models.loading import SMOLLM2_ALIASES, SMOLLM2_HUB_ID
from krill.train.runs import RunSetup, finished_phases, run_setup

EVAL_LABELS = {"before": "the untrained base model (`eval/before.json`)", "after": "this policy (`eval/after.json`)",
               "after_no_skills": "this policy without skills (`eval/after_no_skills.json`)"}  # fmt: skip
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt")  # fmt: skip


@dataclass(frozen=True)
class ExportResult:
    out: Path
    adapter: Path
    merged: Path | None
    base_model: str
    bank: Path | None


def base_model_id(model: str, given: str | None = None) -> str:
    """The id a user elsewhere loads the base from: `given`, krill's alias resolved, or the name of a
    local model folder's own `_name_or_path`; a local path that names nothing else is an error."""
    if given:
        return given
    if model in SMOLLM2_ALIASES:  # the embedded model is that hub model's GGUF
        return SMOLLM2_HUB_ID
    if model == "tiny" or model.startswith("random:"):
        return f"krill:{model}"  # built in-process by krill.models.tiny: there is no hub copy
    folder = Path(model).expanduser()
    if not folder.exists():
        return model  # already a hub id
    name = _name_or_path(folder / "config.json")
    if name and not Path(name).expanduser().exists():
        return name
    raise KrillError(f"the base model is a local folder ({model}); say which hub id it is with --base-model-id",
                     where="model.policy.model")  # fmt: skip


def _name_or_path(config_json: Path) -> str | None:
    try:
        value = read_json(config_json).get("_name_or_path")
    except (KrillError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def export_run(run: str | Path, out: str | Path, *, merge: bool = False, base_model: str | None = None,
               cache_dir: str | Path | None = None) -> ExportResult:  # fmt: skip
    """Bundle the trained policy of `run` (a `krill train`/`rl`/`sft` folder) into `out` (see module doc)."""
    run, out = Path(run), Path(out)
    setup = run_setup(run)
    if setup is None:
        raise KrillError("not a krill run folder with a trained adapter (config.yaml + an adapter)", path=run)
    if out.exists():
        raise KrillError("the output already exists; choose a new folder", path=out)
    config = yaml.safe_load(read_text(setup.config)) or {}
    policy = config.get("model", {}).get("policy", {})
    base = base_model_id(str(policy.get("model", "smollm2")), base_model)
    # built beside `out` and renamed into place at the end: an interrupted export leaves no half bundle
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.is_dir() else None))
    try:
        _copy_adapter(setup.adapter, tmp / "adapter", base)
        if setup.bank:
            shutil.copyfile(setup.bank, tmp / "bank.json")
        atomic_write_text(tmp / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        if merge:
            _merge(config, setup.adapter, tmp / "merged", cache_dir)
        card = model_card(run, setup, config, base, tmp / "bank.json" if setup.bank else None)
        for folder in (tmp, tmp / "adapter", *([tmp / "merged"] if merge else [])):
            atomic_write_text(folder / "README.md", card)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out, out / "adapter", out / "merged" if merge else None, base,
                        out / "bank.json" if setup.bank else None)  # fmt: skip


def _copy_adapter(src: Path, dst: Path, base: str) -> Path:
    """The adapter's weights and tokenizer, with `base_model_name_or_path` set to the hub id."""
    dst.mkdir(parents=True)
    cfg = read_json(src / "adapter_config.json")
    cfg["base_model_name_or_path"] = base
    write_json(dst / "adapter_config.json", cfg)
    for name in ("adapter_model.safetensors", *TOKENIZER_FILES):
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    return dst


def _merge(config: dict[str, Any], adapter: Path, dst: Path, cache_dir: str | Path | None) -> Path:
    """Base + adapter folded into one model (float32 on CPU, as trained here) with its tokenizer."""
    from krill.models.loading import load_causal_lm

    policy = config.get("model", {}).get("policy", {})
    model, tok, _ = load_causal_lm(str(policy.get("model", "smollm2")), adapter=str(adapter), dtype="float32",
                                   device="cpu", cache_dir=cache_dir or config.get("cache_dir") or ".cache",
                                   seed=int(config.get("seed", 0)))  # fmt: skip
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    return dst


def model_card(run: Path, setup: RunSetup, config: dict[str, Any], base: str, bank: Path | None) -> str:
    """The README of the bundle: YAML front matter for the hub, then what it is, how it was made, how it did."""
    env = config.get("env", {}).get("name", "alfworld")
    agent, retrieval = config.get("agent", {}), config.get("skill_retrieval", {})
    front = {"base_model": base, "library_name": "peft", "tags": ["krill", "skillrl", "lora", "grpo", env]}
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
        f"# {run.resolve().name}: a SkillRL policy for {env}, trained with krill", "",
        f"A LoRA adapter on [`{base}`](https://huggingface.co/{base}), trained by `krill` (skill-augmented SFT, "
        "then GRPO with a skill bank that evolves from the policy's failures). The agent reads, in its first "
        f"turn, the top {retrieval.get('top_k', '?')} skills of `bank.json` retrieved for the task "
        f"(`skill_retrieval` in `config.yaml`); the bank ships beside the adapter.", "",
        "## Training", "", f"Preset `{config.get('preset') or 'none'}`, seed {config.get('seed', 0)}; the phases "
        "(`state.json`):", "", *_training_lines(run, bank), "",
        "## Held-out results", "", *_result_lines(setup), "",
        "## Settings the policy expects", "",
        f"- prompt: `agent.context: {agent.get('context', '?')}`, skills in the prompt: "
        f"{agent.get('use_skills', True)}, whole-action choice: {agent.get('constrain_actions', False)}",
        f"- episode cap: {config.get('env', {}).get(env, {}).get('max_steps', '?')} steps; "
        f"evaluation temperature {config.get('eval', {}).get('temperature', '?')}",
        "- everything else: `config.yaml` (the run's recorded config; API keys are never recorded)", "",
        "## Use", "",
        "```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM",
        f'base = AutoModelForCausalLM.from_pretrained("{base}")',
        'model = PeftModel.from_pretrained(base, "adapter")', "```", "",
        "With krill: `krill eval --model <this folder>` (its own settings, adapter and bank). A merged "
        "copy (`krill export --merge`) is in `merged/`, servable as it is: `vllm serve merged`.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _training_lines(run: Path, bank: Path | None) -> list[str]:
    """One bullet per phase the run recorded (state.json), with its key figures and wall time."""
    lines = []
    for phase, info in finished_phases(run).items():
        figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()
                            if isinstance(v, int | float) and k != "cpu_time_s")  # fmt: skip
        lines.append(f"- `{phase}`: {figures}")
    if bank is not None:
        from krill.formats.banks import load_bank

        final = load_bank(bank)
        lines.append(f"- final skill bank: {len(final)} skills, {len(final.common_mistakes)} common mistakes "
                     "(`bank.json`)")  # fmt: skip
    return lines or ["- (the run folder records no phases: an `sft` or `rl` output)"]


def _result_lines(setup: RunSetup) -> list[str]:
    """Success on the run's held-out evaluations, with 95% Wilson intervals, as `krill eval` wrote them."""
    lines = []
    for name, path in setup.evals.items():
        label = EVAL_LABELS.get(name, name)
        try:
            data = read_json(path)
            r = data["results"]["all"]
        except (KrillError, KeyError, TypeError):
            continue
        lines.append(
            f"- {label}: {100 * r['success_rate']:.1f}% [{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}] "
            f"of {r['episodes']} `{data.get('split', '?')}` episodes ({data.get('env', '?')})"
        )
    return lines or ["- none recorded in this run folder (evaluate with `krill eval --model <this folder>`)"]
