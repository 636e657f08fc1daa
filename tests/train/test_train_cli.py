"""`krill sft` and `krill rl` through the real CLI on the tiny preset (the smoke path users run first)."""

import importlib.resources

import pytest

from krill.cli.main import main
from krill.io import read_jsonl

EXAMPLE_BANK = str(importlib.resources.files("krill.data").joinpath("example_bank.json"))


def _krill(*argv):
    with pytest.raises(SystemExit) as exc:
        main(["--preset", "tiny", "--env", "webshop", "--set", "model.policy.device=cpu", *argv])
    return exc.value.code


def test_sft_then_rl_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    monkeypatch.setenv("KRILL_CACHE", str(tmp_path / "cache"))
    sft_dir, rl_dir = tmp_path / "sft", tmp_path / "rl"
    assert _krill("sft", "--skill-bank", EXAMPLE_BANK, "--num-examples", "8", "--out", str(sft_dir)) in (
        0,
        None,
    )
    assert f"wrote {sft_dir}" in capsys.readouterr().out.replace("\n", "")
    assert (sft_dir / "adapter_model.safetensors").exists() and (sft_dir / "demos.jsonl").exists()
    assert len(list(read_jsonl(sft_dir / "demos.jsonl"))) == 8
    code = _krill(
        "rl", "--skill-bank", EXAMPLE_BANK, "--init", str(sft_dir), "--out", str(rl_dir), "--iterations", "1"
    )
    assert code in (0, None)
    assert [r["iteration"] for r in read_jsonl(rl_dir / "metrics.jsonl")] == [1]
    assert (rl_dir / "adapter" / "adapter_model.safetensors").exists()


def test_missing_bank_is_a_one_line_error(tmp_path, capsys):
    assert _krill("sft", "--skill-bank", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.json" in err and "not found" in err and err.count("\n") == 1
