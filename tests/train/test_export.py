"""`krill export`: the bundle loads with PEFT/transformers elsewhere (base id not a local path), carries
the bank, settings and a filled model card, is itself a run folder, and never half-exists."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from krill.config import load_config
from krill.errors import KrillError
from krill.io import write_json
from krill.models.tiny import build_tiny_model
from krill.runrecord import record_config
from krill.schema import SkillBank
from krill.train.checkpoint import make_trainable
from krill.train.export import base_model_id, export_run
from krill.train.runs import run_setup


def _trained_run(tmp_path):
    """A `krill rl`-shaped folder: the tiny model's LoRA with non-zero B (a trained adapter), a bank, a
    recorded config, a state.json and an evaluation."""
    cfg = load_config(preset="tiny", overrides=["model.policy.device=cpu", f"cache_dir={tmp_path / 'cache'}"])
    run = tmp_path / "run"
    model = make_trainable(build_tiny_model(0)[0], cfg.lora, seed=0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    model.save_pretrained(run / "rl" / "adapter")
    record_config(cfg, run)
    (run / "rl" / "bank.json").write_text(SkillBank().model_dump_json())
    write_json(
        run / "state.json", {"done": {"sft": {"examples": 64, "final_loss": 0.25, "wall_time_s": 9.0}}}
    )
    all_ = {"episodes": 60, "success_rate": 0.25, "ci_low": 0.158, "ci_high": 0.372}
    write_json(
        run / "eval" / "after.json", {"split": "valid_unseen", "env": "alfworld", "results": {"all": all_}}
    )
    return cfg, run


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_the_bundle_loads_with_peft_on_the_named_base_and_matches_the_trained_policy(tmp_path):
    from peft import PeftModel

    from krill.models.loading import load_causal_lm

    cfg, run = _trained_run(tmp_path)
    result = export_run(run, tmp_path / "out", cache_dir=cfg.cache_dir)
    adapter_cfg = json.loads((result.adapter / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == "krill:tiny"  # not this machine's path
    ids = torch.tensor([[1, 5, 9, 12, 3]])
    trained, _, _ = load_causal_lm(
        "tiny", adapter=str(run / "rl" / "adapter"), device="cpu", cache_dir=cfg.cache_dir
    )
    elsewhere = PeftModel.from_pretrained(build_tiny_model(0)[0], str(result.adapter))
    assert torch.allclose(_logits(elsewhere, ids), _logits(trained, ids), atol=1e-5)
    assert not torch.allclose(_logits(build_tiny_model(0)[0], ids), _logits(trained, ids), atol=1e-3)
    assert (tmp_path / "out" / "bank.json").is_file()
    assert (
        yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["agent"]
        == cfg.to_public_dict()["agent"]
    )
    # the bundle is a run folder: `krill eval --model OUT` finds its settings, adapter and bank
    setup = run_setup(tmp_path / "out")
    assert setup.adapter == result.adapter and setup.bank == tmp_path / "out" / "bank.json"


def test_the_model_card_says_what_was_trained_and_how_it_did(tmp_path):
    cfg, run = _trained_run(tmp_path)
    export_run(run, tmp_path / "out", cache_dir=cfg.cache_dir)
    card = (tmp_path / "out" / "adapter" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == "krill:tiny" and front["library_name"] == "peft"
    assert "this policy (`eval/after.json`): 25.0% [15.8–37.2] of 60 `valid_unseen` episodes" in card
    assert "- `sft`: examples 64, final_loss 0.25, wall_time_s 9" in card
    assert f"agent.context: {cfg.agent.context}" in card and "{{" not in card


def test_merge_writes_one_transformers_model_equal_to_base_plus_adapter(tmp_path):
    from transformers import AutoModelForCausalLM

    from krill.models.loading import load_causal_lm

    cfg, run = _trained_run(tmp_path)
    result = export_run(run, tmp_path / "out", merge=True, cache_dir=cfg.cache_dir)
    merged = AutoModelForCausalLM.from_pretrained(result.merged, local_files_only=True)
    trained, _, _ = load_causal_lm(
        "tiny", adapter=str(run / "rl" / "adapter"), device="cpu", cache_dir=cfg.cache_dir
    )
    ids = torch.tensor([[1, 5, 9, 12, 3]])
    assert torch.allclose(_logits(merged, ids), _logits(trained, ids), atol=1e-5)
    assert (result.merged / "tokenizer.json").is_file() and (result.merged / "README.md").is_file()


def test_base_model_ids(tmp_path):
    assert base_model_id("smollm2") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model_id("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert base_model_id(str(tmp_path), "org/name") == "org/name"
    write_json(tmp_path / "m" / "config.json", {"_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct"})
    assert base_model_id(str(tmp_path / "m")) == "Qwen/Qwen2.5-1.5B-Instruct"
    write_json(tmp_path / "local" / "config.json", {"_name_or_path": str(tmp_path)})
    with pytest.raises(KrillError, match="--base-model-id"):
        base_model_id(str(tmp_path / "local"))


def test_bad_inputs_are_one_line_errors_and_leave_nothing(tmp_path):
    cfg, run = _trained_run(tmp_path)
    with pytest.raises(KrillError, match="not a krill run folder"):
        export_run(tmp_path / "cache", tmp_path / "x")
    (tmp_path / "taken").mkdir()
    with pytest.raises(KrillError, match="already exists"):
        export_run(run, tmp_path / "taken")
    (run / "config.yaml").write_text(
        (run / "config.yaml").read_text().replace("model: tiny", f"model: {run}")
    )
    with pytest.raises(KrillError, match="--base-model-id"):  # a local base folder that names no hub id
        export_run(run, tmp_path / "out")


def test_an_export_that_fails_midway_leaves_no_half_bundle(tmp_path, monkeypatch):
    import krill.train.export as export

    cfg, run = _trained_run(tmp_path)

    def broken(*args, **kwargs):
        raise KrillError("disk full")

    monkeypatch.setattr(export, "model_card", broken)  # after the adapter and bank were copied
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(KrillError, match="disk full"):
        export_run(run, tmp_path / "out", cache_dir=cfg.cache_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no `out`, no temp folder


def test_cli_export(tmp_path, monkeypatch, cli):
    cfg, run = _trained_run(tmp_path)
    monkeypatch.setenv("KRILL_CACHE", str(cfg.cache_dir))
    code, out, err = cli("export", str(run), str(tmp_path / "out"))
    assert code == 0, err
    assert "krill:tiny" in " ".join(out.split()) and (tmp_path / "out" / "README.md").is_file()
    code, _, err = cli("export", str(run), str(tmp_path / "out"))
    assert code == 2 and "already exists" in err and "Traceback" not in err
