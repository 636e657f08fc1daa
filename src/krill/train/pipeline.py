"""`run_pipeline()`: the whole SkillRL loop into one run directory, each phase skipped when complete.

RUN/
  config.yaml            the effective config (env var names only, never key values)
  state.json             which phases are complete (atomic), so a re-run resumes where it stopped
  trajectories/          expert.jsonl, policy.jsonl (collect)
  banks/                 cycle_0.json (distill), cycle_K.json (evolution), distill_report.json
  sft/                   adapter + tokenizer + demos.jsonl
  rl/                    checkpoints, metrics.jsonl, tb/, rollouts/iter_K.jsonl (every iteration's episodes)
  eval/                  before.json, after.json (+ after_no_skills.json under skills.curriculum; + trajectories)
  metrics.jsonl          one line per finished phase (wall time, headline numbers)
  logs/
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import append_jsonl, read_json, read_jsonl, write_json, write_jsonl
from krill.runlock import run_lock
from krill.schema import SkillBank
from krill.train.checkpoint import write_run_config
from krill.train.evolution import evolve_hook_for

log = logging.getLogger(__name__)

PHASES = ("collect", "distill", "eval_before", "sft", "rl", "eval_after")


@dataclass
class RunState:
    """Completed phases and their outputs; persisted in RUN/state.json after every phase."""

    path: Path
    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        """The state of `run_dir` (empty when new); a damaged state.json is a one-line error."""
        p = run_dir / "state.json"
        if not p.exists():
            return cls(p, {})
        data = read_json(p)
        done = data.get("done", {}) if isinstance(data, dict) else None
        if not isinstance(done, dict) or not all(isinstance(v, dict) for v in done.values()):
            raise KrillError('damaged: expected {"done": {phase: {...}}}; restore it or use another --out',
                             path=p, where="done")  # fmt: skip
        return cls(p, done)

    def mark(self, phase: str, **info: Any) -> None:
        self.done[phase] = info
        write_json(self.path, {"done": self.done})


@dataclass
class PipelineResult:
    run_dir: Path
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    bank_sizes: dict[str, int]
    wall_time_s: float


def _bank_sizes(bank: SkillBank) -> dict[str, int]:
    return {"general": len(bank.general_skills), "task_specific": len(bank) - len(bank.general_skills),
            "mistakes": len(bank.common_mistakes), "total": len(bank)}  # fmt: skip


class Phases:
    """Runs named phases of one run directory once each (`krill train`, `krill ablate`).

    A phase marked done in state.json is skipped (its outputs are returned from the state); a fresh
    one is logged to metrics.jsonl, then marked done, so a kill at any moment neither loses a finished
    phase nor logs one twice.
    """

    def __init__(self, run_dir: Path, notify: Callable[[str, dict[str, Any]], None] | None = None):
        self.run_dir = run_dir
        self.state = RunState.load(run_dir)
        self.notify = notify or (lambda phase, info: None)
        metrics = run_dir / "metrics.jsonl"
        self.logged = {r.get("phase") for r in read_jsonl(metrics, repair_tail=True)} if metrics.exists() else set()  # fmt: skip
        if self.state.done:
            log.info("resuming %s: %s already complete", run_dir, ", ".join(self.state.done))

    def __call__(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        metrics, done = self.run_dir / "metrics.jsonl", self.state.done
        if name in done:
            if name not in self.logged:  # killed between marking the phase done and logging it
                append_jsonl(metrics, {"phase": name, **done[name]})
                self.logged.add(name)
            self.notify(name, {"skipped": True, **done[name]})
            return _inside(self.run_dir, name, done[name], self.state.path)
        self.notify(name, {"started": True})
        log.info("phase %s: started", name)  # RUN/logs/*.log tells the story without a terminal
        t0, c0 = time.perf_counter(), time.process_time()
        info = fn()
        info["wall_time_s"] = round(time.perf_counter() - t0, 1)
        info["cpu_time_s"] = round(time.process_time() - c0, 1)  # this process only (not env workers)
        if name in self.logged:  # killed between logging this phase and marking it done: log it once
            write_jsonl(metrics, [r for r in read_jsonl(metrics, repair_tail=True) if r.get("phase") != name])
        append_jsonl(metrics, {"phase": name, **info})  # logged, then marked done
        self.logged.add(name)
        self.state.mark(name, **info)
        log.info("phase %s: finished in %.0f s: %s", name, info["wall_time_s"],
                 ", ".join(f"{k}={v}" for k, v in info.items() if k not in ("wall_time_s", "cpu_time_s")))  # fmt: skip
        self.notify(name, {"finished": True, **info})
        return info


PATH_KEYS = ("path", "bank", "adapter")  # what a phase records as files of its run


def _inside(run_dir: Path, phase: str, info: dict[str, Any], state: Path) -> dict[str, Any]:
    """A finished phase's recorded outputs, refused when one points outside the run (a tampered
    state.json must not make krill read /etc/passwd as a bank)."""
    root = run_dir.resolve()
    for key in PATH_KEYS:
        value = info.get(key)
        if value is not None and (
            not isinstance(value, str) or not Path(value).resolve().is_relative_to(root)
        ):
            raise KrillError(f"{value!r} is not a file of this run; restore state.json or use another --out",
                             path=state, where=f"done.{phase}.{key}")  # fmt: skip
    return info


def run_pipeline(
    cfg: KrillConfig, run_dir: str | Path, *, on_phase: Callable[[str, dict[str, Any]], None] | None = None
) -> PipelineResult:
    """collect → distill → eval (untrained) → SFT → RL with evolution → eval (trained), resumable."""
    run_dir = Path(run_dir)
    with run_lock(run_dir, "train"):
        start_run_dir(cfg, run_dir)
        start = time.perf_counter()
        with log_to(run_dir / "logs" / "train.log"):
            return _run_phases(cfg, run_dir, Phases(run_dir, on_phase), start)


def start_run_dir(cfg: KrillConfig, run_dir: Path) -> None:
    """Record the effective config in RUN/config.yaml (key names only, never values; a resume with other
    settings is refused here, before anything else is written), then create RUN/logs/."""
    write_run_config(cfg, run_dir)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)


def _run_phases(cfg: KrillConfig, run_dir: Path, phase: Phases, start: float) -> PipelineResult:
    from krill.formats.banks import load_bank

    phase("collect", lambda: collect_phase(cfg, run_dir))
    phase("distill", lambda: distill_phase(cfg, run_dir))
    bank0 = load_bank(run_dir / "banks" / "cycle_0.json")
    before = phase("eval_before", lambda: eval_phase(cfg, run_dir / "eval" / "before.json", bank0))
    phase("sft", lambda: sft_phase(cfg, run_dir / "sft", bank0))
    rl = phase("rl", lambda: rl_phase(cfg, run_dir / "rl", bank0, init=run_dir / "sft",
                                      evolve_hook=evolve_hook_for(cfg, run_dir / "rl", run_dir / "banks")))  # fmt: skip
    final_bank = load_bank(rl["bank"])
    after = phase("eval_after", lambda: eval_phase(cfg, run_dir / "eval" / "after.json", final_bank, adapter=rl["adapter"]))  # fmt: skip
    if cfg.skills.curriculum != "none":  # trained to do without skills: measured without them too
        bare = cfg.override({"agent.use_skills": False})
        phase("eval_after_no_skills", lambda: eval_phase(bare, run_dir / "eval" / "after_no_skills.json", None, adapter=rl["adapter"]))  # fmt: skip
    return PipelineResult(
        run_dir=run_dir,
        before=read_json(before["path"]) if before.get("path") else None,
        after=read_json(after["path"]) if after.get("path") else None,
        bank_sizes=_bank_sizes(final_bank),
        wall_time_s=round(time.perf_counter() - start, 1),
    )


@contextmanager
def log_to(path: Path) -> Iterator[None]:
    """krill's log lines (resumes, evolution cycles, teacher warnings) also go to RUN/logs/train.log."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("krill")
    logger.addHandler(handler)
    if logger.level in (logging.NOTSET, logging.WARNING):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


# -- phases -------------------------------------------------------------------------------------
def collect_phase(cfg: KrillConfig, run_dir: Path) -> dict[str, Any]:
    """Expert rollouts (successes for distillation/SFT) + untrained-policy rollouts (real failures)."""
    from krill.agent.collect import CollectOptions, collect

    tdir = run_dir / "trajectories"
    expert = collect(cfg, CollectOptions(episodes=cfg.train.expert_episodes, policy="expert",
                                         out=str(tdir / "expert.jsonl"), resume=True, seed=cfg.seed))  # fmt: skip
    policy = collect(cfg,
                     CollectOptions(episodes=cfg.train.policy_episodes, policy="local", max_steps=cfg.train.policy_max_steps,
                                    out=str(tdir / "policy.jsonl"), resume=True, seed=cfg.seed + 1))  # fmt: skip
    return {**_rate("expert", expert.trajectories), **_rate("policy", policy.trajectories)}


def _rate(name: str, trajs: list) -> dict[str, Any]:
    n = len(trajs)
    return {
        f"{name}_episodes": n,
        f"{name}_success": round(sum(t.success for t in trajs) / n, 3) if n else 0.0,
    }


def collected_trajectories(run_dir: Path) -> list:
    """What the collect phase wrote: the expert's episodes, then the untrained policy's (if any)."""
    from krill.formats.trajectories import load_trajectories

    tdir = run_dir / "trajectories"
    trajs = [*load_trajectories(tdir / "expert.jsonl")]
    if (tdir / "policy.jsonl").exists():
        trajs += load_trajectories(tdir / "policy.jsonl")
    return trajs


def distill_phase(cfg: KrillConfig, run_dir: Path) -> dict[str, Any]:
    from krill.formats.banks import save_bank
    from krill.models import build_embedder
    from krill.skills.distill import distill
    from krill.skills.teachers import make_teacher

    trajs = collected_trajectories(run_dir)
    out = run_dir / "banks" / "cycle_0.json"
    teacher = make_teacher(cfg, work_dir=run_dir / "banks" / "cycle_0.work")
    bank, report = distill(trajs, teacher, build_embedder(cfg), cfg)
    save_bank(bank, out)
    write_json(run_dir / "banks" / "distill_report.json", _jsonable(report))
    return {"bank": str(out), **_bank_sizes(bank)}


def _jsonable(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj):
        return asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return obj if isinstance(obj, dict) else {"report": str(obj)}


def eval_phase(
    cfg: KrillConfig,
    out: Path,
    bank: SkillBank | None,
    *,
    adapter: str | None = None,
    retriever: Any = None,
) -> dict[str, Any]:
    """The policy (+ `adapter`) on `cfg.train.eval_episodes` held-out games, skills from `bank` (or
    `retriever`; none when `agent.use_skills` is off), into `out` (resumable)."""
    from krill.evaluate.eval import evaluate

    result = evaluate(
        cfg.override({"model.policy.adapter": adapter}),
        policy="local",
        bank=bank,
        out=out,
        episodes=cfg.train.eval_episodes,
        retriever=retriever,
    )
    return {"path": str(out), "success_rate": result.results["all"].success_rate}


def sft_phase(cfg: KrillConfig, out_dir: Path, bank: SkillBank) -> dict[str, Any]:
    """Skill-augmented SFT into `out_dir` (resumable; demos built before an interrupt are reused)."""
    from krill.train.sft import run_sft

    demos = out_dir / "demos.jsonl"
    result = run_sft(cfg, bank, out_dir, demos_path=demos if demos.exists() else None, resume=True)
    return {"adapter": str(result.adapter_dir), "examples": result.examples,
            "initial_loss": round(result.initial_loss, 4), "final_loss": round(result.final_loss, 4)}  # fmt: skip


def rl_phase(
    cfg: KrillConfig, out_dir: Path, bank: SkillBank, *, init: Path | None, evolve_hook: Any = None
) -> dict[str, Any]:
    """GRPO from `init` (an SFT adapter; None = the base model) into `out_dir` (resumable)."""
    from krill.train.rl import run_rl

    result = run_rl(
        cfg, bank, out_dir, init=str(init) if init else None, resume=True, evolve_hook=evolve_hook
    )
    return {
        "adapter": str(result.adapter_dir),
        "bank": str(result.bank_path),
        "iterations": result.iterations,
        "updates": result.updates,  # iterations that changed the weights (this run; resumed ones not counted)
    }
