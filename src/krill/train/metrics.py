"""Per-iteration RL metrics: computed from the rollouts (gathered over processes), logged to JSONL + TensorBoard.

Keys are namespaced as in CleanRL: `rollout/reward`, `charts/success_rate`, `losses/kl`, `adv/std`…
Per-category values get a suffix (`charts/success_rate/Heat`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from krill.errors import KrillError
from krill.io import append_jsonl
from krill.schema import Trajectory


def iteration_metrics(
    trajs: list[Trajectory], rewards: torch.Tensor, adv: torch.Tensor, zero_var: int, accel: Any
) -> dict[str, float]:
    """Reward, success, invalid actions, steps and tokens per category, advantage stats, zero-variance groups."""
    local = [
        (t.task_category or "?", float(r), float(t.success), float(t.num_invalid), len(t.steps),
         sum(int((s.model_extra or {}).get("prompt_tokens", 0)) for s in t.steps),
         sum(int((s.model_extra or {}).get("response_tokens", 0)) for s in t.steps), float(a))
        for t, r, a in zip(trajs, rewards.tolist(), adv.tolist(), strict=True)
    ]  # fmt: skip
    rows, zero = _gathered(local, accel), _gathered([zero_var], accel)
    out: dict[str, float] = {"rollout/episodes": float(len(rows)), "groups/zero_variance": float(sum(zero))}
    if not rows:
        return {**out, "rollout/reward": 0.0, "charts/success_rate": 0.0}
    out.update(_summary(rows))
    out.update(_per_category(rows, 1, "rollout/reward") | _per_category(rows, 2, "charts/success_rate"))
    advs = torch.tensor([r[7] for r in rows])
    out.update({"adv/mean": advs.mean().item(), "adv/std": advs.std().item() if len(rows) > 1 else 0.0,
                "adv/abs_max": advs.abs().max().item(), "adv/nonzero_frac": (advs != 0).float().mean().item()})  # fmt: skip
    return out


def drawn_success(trajs: list[Trajectory], accel: Any) -> dict[str, float]:
    """Success over every episode dynamic sampling drew (not only the groups it kept, which are biased
    towards mixed outcomes): overall and per category, as `iteration_metrics` names them, which
    `skills.curriculum: success` reads."""
    local = [(t.task_category or "?", float(t.success)) for t in trajs if t.metadata.get("guide") != "expert"]
    rows = _gathered(local, accel)
    out = {"sampling/episodes_drawn": float(len(rows)), "charts/success_rate": _mean([r[1] for r in rows])}
    return out | _per_category(rows, 1, "charts/success_rate")


def _gathered(local: list, accel: Any) -> list:
    """Every process's rows (one process: its own)."""
    from accelerate.utils import gather_object

    return gather_object(local) if accel.num_processes > 1 else local


def _per_category(rows: list[tuple], column: int, key: str) -> dict[str, float]:
    """`key/<category>`: the mean of `column` over each category's rows (category first in each row)."""
    cats = sorted({r[0] for r in rows})
    return {f"{key}/{cat}": _mean([r[column] for r in rows if r[0] == cat]) for cat in cats}


def group_metrics(groups: list[list[Trajectory]], penalty: float, evolved: set[str]) -> dict[str, float]:
    """What the groups gave GRPO to learn from: how many differ in reward (informative), how many
    won at all, the mean best progress (`info["progress"]`), the guided share (`rl.guidance`) and the
    share of episodes whose prompt carried a skill added by evolution. This process's groups only."""
    from krill.train.guidance import guided_steps
    from krill.train.samples import shaped_rewards

    trajs = [t for g in groups for t in g]
    if not trajs:
        return {"groups/total": 0.0, "groups/informative": 0.0}
    informative = sum(len(set(shaped_rewards(g, penalty).tolist())) > 1 for g in groups)
    expert = [t for t in trajs if t.metadata.get("guide") == "expert"]
    guided = [t for t in trajs if guided_steps(t) and t not in expert]
    plain = [t for t in trajs if not guided_steps(t)]
    progress = [float(t.metadata["progress"]) for t in trajs if t.metadata.get("progress") is not None]
    out = {
        "groups/total": float(len(groups)),
        "groups/informative": float(informative),
        "groups/with_win": float(sum(any(t.success for t in g) for g in groups)),
        "groups/wins_mean": _mean([float(sum(t.success for t in g)) for g in groups]),
        "rollout/success_unguided": _mean(
            [float(t.success) for t in plain]
        ),  # the policy alone, from the start
        "guide/share": (len(guided) + len(expert)) / len(trajs),
        "guide/success": _mean([float(t.success) for t in guided]),
        "guide/expert_members": float(len(expert)),
        "skills/evolved_share": _mean(
            [float(bool(evolved & set(t.metadata.get("skills_used") or []))) for t in trajs]
        ),
    }
    if progress:
        out["rollout/progress"] = _mean(progress)
    return out


def _summary(rows: list[tuple]) -> dict[str, float]:
    return {
        "rollout/reward": _mean([r[1] for r in rows]),
        "charts/success_rate": _mean([r[2] for r in rows]),
        "rollout/invalid_actions": _mean([r[3] for r in rows]),
        "rollout/steps": _mean([r[4] for r in rows]),
        "tokens/prompt": float(sum(r[5] for r in rows)),
        "tokens/response": float(sum(r[6] for r in rows)),
    }


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


class MetricsLogger:
    """Appends one row per iteration (RL) or optimizer step (SFT: `index_key="step"`) to
    `out_dir/metrics.jsonl` and mirrors its scalars to `report_to` (`train.report_to`): TensorBoard in
    `out_dir/tb`, and/or a Weights & Biases run named after `out_dir` (configured with `run_config`)."""

    def __init__(self, out_dir: str | Path, *, enabled: bool = True, index_key: str = "iteration",
                 report_to: Sequence[str] = ("tensorboard",), run_config: dict | None = None):  # fmt: skip
        self.path = Path(out_dir) / "metrics.jsonl"
        self.enabled, self.index_key = enabled, index_key
        self._tb = self._wandb = None
        if enabled and "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(out_dir) / "tb"))
            except ImportError:  # tensorboard is a dependency, but metrics.jsonl alone is enough
                self._tb = None
        if enabled and "wandb" in report_to:
            self._wandb = _wandb_run(Path(out_dir), run_config or {})

    def log(self, iteration: int, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        append_jsonl(self.path, {self.index_key: iteration, **row})
        if self._tb is not None:
            for k, v in row.items():
                self._tb.add_scalar(k, v, iteration)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({**row, self.index_key: iteration}, step=iteration)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _wandb_run(out_dir: Path, run_config: dict) -> Any:
    """A wandb run for `out_dir` (its files under `out_dir/wandb`); the key is wandb's own business
    (WANDB_API_KEY or `wandb login`), never krill's config."""
    try:
        import wandb
    except ImportError:
        raise KrillError("train.report_to includes wandb, but the wandb package is not installed "
                         "(pip install wandb)", where="train.report_to") from None  # fmt: skip
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "krill"), name=out_dir.resolve().name,
                      dir=str(out_dir), config=run_config, resume="allow")  # fmt: skip
