"""Keys that moved to their true homes (issue 32): old spellings still load, with a one-line notice;
a run recorded under the old names resumes without a drift error; both spellings at odds is an error."""

from __future__ import annotations

import logging

import pytest
import yaml

from krill.config import KrillConfig, load_config
from krill.config_renames import RENAMED
from krill.errors import KrillError
from krill.runrecord import check_unchanged, record_path


def test_every_old_spelling_loads_as_its_new_key_with_a_notice(tmp_path, caplog):
    path = tmp_path / "old.yaml"
    path.write_text("rl:\n  max_prompt_length: 700\n  max_response_length: 9\nsft:\n  lora:\n    r: 3\n")
    with caplog.at_level(logging.WARNING, logger="krill"):
        cfg = load_config(path)
    assert (cfg.agent.max_prompt_length, cfg.model.policy.max_new_tokens, cfg.lora.r) == (700, 9, 3)
    assert cfg.sampling("rollout").max_new_tokens == cfg.sampling("eval").max_new_tokens == 9
    notices = [r.getMessage() for r in caplog.records if "old name still loads" in r.getMessage()]
    assert len(notices) == len(RENAMED) and all(str(path) in n for n in notices)
    assert any("rl.max_prompt_length is now agent.max_prompt_length" in n for n in notices)


def test_old_spellings_in_set_and_override_land_on_the_new_key():
    assert load_config(overrides=["rl.max_prompt_length=321"]).agent.max_prompt_length == 321
    assert load_config(overrides=["sft.lora.alpha=7"]).lora.alpha == 7
    assert KrillConfig().override({"rl.max_response_length": 5}).model.policy.max_new_tokens == 5


def test_both_spellings_at_odds_name_the_file_and_both_keys(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("agent:\n  max_prompt_length: 700\nrl:\n  max_prompt_length: 800\n")
    with pytest.raises(KrillError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "rl.max_prompt_length" in msg and "agent.max_prompt_length" in msg
    assert "800" in msg and "700" in msg
    path.write_text("agent:\n  max_prompt_length: 700\nrl:\n  max_prompt_length: 700\n")
    assert load_config(path).agent.max_prompt_length == 700  # the same value twice is no conflict


def test_the_cli_reads_an_old_spelling_and_says_so_in_one_line(cli):
    code, out, err = cli("--preset", "tiny", "--set", "rl.max_prompt_length=640", "config", "show")
    assert code == 0 and "max_prompt_length: 640" in out
    assert "agent.max_prompt_length" in err and "Traceback" not in err


def _old_record(cfg: KrillConfig) -> dict:
    """`cfg` as a run folder recorded it before the rename."""
    data = cfg.to_public_dict()
    data["rl"]["max_prompt_length"] = data["agent"].pop("max_prompt_length")
    data["rl"]["max_response_length"] = data["model"]["policy"]["max_new_tokens"]
    data["sft"]["lora"] = data.pop("lora")
    return data


def test_a_run_recorded_under_the_old_names_resumes_and_changes_are_still_caught(tmp_path):
    cfg = load_config(preset="tiny")
    path = record_path(tmp_path / "run")
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(_old_record(cfg)))
    check_unchanged(cfg, path)  # same settings under their old names: no drift
    with pytest.raises(KrillError, match="lora.r"):
        check_unchanged(cfg.override({"lora.r": 8}), path)
    # a record whose two reply caps differed (the paper preset's 512 / 1024) resumes only knowingly
    old = _old_record(cfg)
    old["rl"]["max_response_length"] = 99
    path.write_text(yaml.safe_dump(old))
    with pytest.raises(KrillError) as err:
        check_unchanged(cfg, path)
    assert "model.policy.max_new_tokens" in str(err.value) and "99" in str(err.value)


def test_renaming_leaves_the_callers_dict_as_it_was():
    extra = {"rl": {"max_prompt_length": 555}}
    assert load_config(extra=extra).agent.max_prompt_length == 555
    assert extra == {"rl": {"max_prompt_length": 555}}
