"""`train.report_to`: SFT and RL curves go to TensorBoard and/or Weights & Biases besides metrics.jsonl
(TRL's `report_to`); wandb that is not installed is a one-line error naming the key."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from krill.config import load_config
from krill.errors import KrillError
from krill.train.metrics import MetricsLogger


class FakeWandb:
    def __init__(self):
        self.inits, self.logged, self.finished = [], [], 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return SimpleNamespace(log=lambda row, step: self.logged.append((step, row)), finish=self._finish)

    def _finish(self):
        self.finished += 1


def test_wandb_gets_every_row_with_its_step_and_the_run_config(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    logger = MetricsLogger(tmp_path / "sft", index_key="step", report_to=["wandb"], run_config={"seed": 3})
    logger.log(1, {"loss": 1.5})
    logger.log(2, {"loss": 0.9})
    logger.close()
    assert fake.inits[0]["name"] == "sft" and fake.inits[0]["config"] == {"seed": 3}
    assert (
        fake.logged == [(1, {"loss": 1.5, "step": 1}), (2, {"loss": 0.9, "step": 2})] and fake.finished == 1
    )
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "loss": 1.5}, {"step": 2, "loss": 0.9}]  # the file is written either way
    assert not (tmp_path / "sft" / "tb").exists()  # tensorboard was not asked for


def test_wandb_not_installed_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb → ImportError
    with pytest.raises(KrillError, match="pip install wandb") as err:
        MetricsLogger(tmp_path, report_to=["wandb"])
    assert err.value.where == "train.report_to"


def test_the_config_key_takes_only_known_backends_and_does_not_block_a_resume():
    assert load_config().train.report_to == ["tensorboard"]
    with pytest.raises(KrillError, match="train.report_to"):
        load_config(overrides=["train.report_to=[mlflow]"])
    from krill.runrecord import _operational

    assert _operational("train.report_to")  # logging elsewhere does not change what a run computes
