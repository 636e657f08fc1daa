"""`run_ablation()`: SkillRL's ablation table (paper Table 3), every variant on the same tasks and budget.

RUN/
  config.yaml, state.json, metrics.jsonl, logs/    as `krill train` (`krill.train.pipeline`)
  trajectories/, banks/cycle_0.json                shared: one collection, one distillation
  sft/seed_S/                                      shared: one skill-augmented SFT per seed (a variant
                                                   that changes SFT settings: its own sft/seed_S-<hash>/)
  variants/NAME/[seed_S/]eval.json                 each variant's held-out evaluation (+ rl/, banks/)
  ablation.json, ablation.md, ablation.png         the table (`krill.evaluate.ablation_report`)

Every phase is a named entry of state.json (`collect`, `sft/seed_S`, `rl/NAME/seed_S`,
`eval/NAME[/seed_S]`), so a phase shared by several variants runs once and a re-run after a kill
redoes nothing that finished (an interrupted SFT, RL or eval continues from its own checkpoint).
Untrained variants do not depend on the seed and are evaluated once; trained ones once per seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from krill.config import KrillConfig
from krill.evaluate.ablation_report import ABLATION_FORMAT, write_ablation_report
from krill.io import read_json, write_json
from krill.runlock import run_lock
from krill.schema import SkillBank
from krill.train.evolution import evolve_hook_for
from krill.train.pipeline import (
    Phases,
    collect_phase,
    collected_trajectories,
    distill_phase,
    eval_phase,
    log_to,
    rl_phase,
    sft_phase,
    start_run_dir,
)
from krill.train.variants import (  # noqa: F401  (re-exported: the registry's old home)
    MAX_SEEDS,
    PAPER_VARIANTS,
    REFERENCE,
    VARIANTS,
    Variant,
    check_seeds,
    parse_variants,
)


def variant_overrides(name: str) -> dict[str, Any]:
    """The config keys a variant changes (everything else is the run's config, shared by all)."""
    v = VARIANTS[name]
    out: dict[str, Any] = {}
    if v.context == "none":
        out["agent.use_skills"] = False
    if v.rl:
        out["evolution.enabled"] = v.evolve
    return out | dict(v.overrides)


def ablation_config(cfg: KrillConfig) -> KrillConfig:
    """The run's config as the ablation trains it: `ablate.rl_iterations` GRPO iterations, when set."""
    n = cfg.ablate.rl_iterations
    return cfg.override({"rl.iterations": n}) if n and n != cfg.rl.iterations else cfg


# sections SFT does not read: variants that differ only there share one SFT adapter
NOT_SFT = ("rl", "evolution", "eval", "ablate", "skills", "train")


def sft_suffix(run_cfg: KrillConfig, cfg: KrillConfig) -> str:
    """'' when `cfg` trains SFT as the run's config does (seeds aside), else `-<hash>` of its SFT settings."""
    import hashlib
    import json

    def sft_view(c: KrillConfig) -> str:
        public = {k: v for k, v in c.to_public_dict().items() if k not in NOT_SFT}
        public.get("sft", {}).pop("seed", None)  # the seed is in the phase name already
        return json.dumps(public, sort_keys=True, default=str)

    mine = sft_view(cfg)
    return "" if mine == sft_view(run_cfg) else "-" + hashlib.sha256(mine.encode()).hexdigest()[:8]


def training_seed(seed: int) -> dict[str, int]:
    """A training seed S: SFT's demo order and adapter init, and GRPO's task and rollout sampling."""
    return {"sft.seed": seed, "rl.seed": seed}


def variant_config(cfg: KrillConfig, name: str, seed: int | None = None) -> KrillConfig:
    """The run's config with `name`'s overrides (and the training seed, for trained variants)."""
    overrides = variant_overrides(name)
    if seed is not None and VARIANTS[name].trained:
        overrides.update(training_seed(seed))
    return cfg.override(overrides) if overrides else cfg


@dataclass
class AblationResult:
    run_dir: Path
    data: dict[str, Any]  # what RUN/ablation.json holds
    files: dict[str, Path]


def run_ablation(
    cfg: KrillConfig,
    run_dir: str | Path,
    *,
    variants: list[str] | None = None,
    seeds: int = 1,
    on_phase: Callable[[str, dict[str, Any]], None] | None = None,
) -> AblationResult:
    """Run `variants` (default: the paper's) with `seeds` training seeds into `run_dir`; resumable.

    Writes RUN/ablation.json (+ .md, .png) after every finished variant, so a long run shows its
    table as it goes."""
    check_seeds(seeds)
    run_dir = Path(run_dir)
    with run_lock(run_dir, "ablate"):
        return _run_ablation(ablation_config(cfg), run_dir, variants or list(PAPER_VARIANTS), seeds, on_phase)


def _run_ablation(cfg: KrillConfig, run_dir: Path, names: list[str], seeds: int, on_phase) -> AblationResult:
    start_run_dir(cfg, run_dir)  # a resume with other settings is refused (krill.runrecord)
    seed_list = [cfg.rl.seed + i for i in range(seeds)]
    start = time.perf_counter()
    with log_to(run_dir / "logs" / "ablate.log"):
        runner = _Runner(cfg, run_dir, Phases(run_dir, on_phase))
        runner.shared()
        data = _table_data(cfg, names, seed_list)
        for name in names:
            for seed in _seeds_of(name, seed_list):
                for row, run in runner.variant(name, seed):
                    data["variants"][row]["runs"].append(run)
            _note_wall_times(data, runner.phase.state.done, name)
            write_json(run_dir / "ablation.json", data)
            files = write_ablation_report(data, run_dir)
    data["wall_time_s"] = _total_wall(runner.phase.state.done)
    data["this_process_s"] = round(time.perf_counter() - start, 1)
    write_json(run_dir / "ablation.json", data)
    return AblationResult(run_dir, data, files)


def _seeds_of(name: str, seed_list: list[int]) -> list[int | None]:
    return list(seed_list) if VARIANTS[name].trained else [None]


def _table_data(cfg: KrillConfig, names: list[str], seed_list: list[int]) -> dict[str, Any]:
    return {
        "format": ABLATION_FORMAT,
        "env": cfg.env.name,
        "preset": cfg.preset,
        "model": cfg.model.policy.model,
        "split": cfg.eval.split,
        "episodes": cfg.train.eval_episodes,
        "seeds": seed_list,
        "reference": REFERENCE,
        "variants": {row: {"description": text, "runs": []} for n in names for row, text in _rows_of(n)},
    }


def _rows_of(name: str) -> list[tuple[str, str]]:
    """A variant's table rows: itself, and its policy without skills when it is evaluated so too."""
    rows = [(name, VARIANTS[name].description)]
    if VARIANTS[name].without_skills:
        rows.append((f"{name} without skills", "the same policy, no skills in the prompt at evaluation"))
    return rows


def _note_wall_times(data: dict[str, Any], done: dict[str, dict[str, Any]], name: str) -> None:
    """The variant's own phases, the shared ones (collection, distillation, SFT) and the total."""
    data["variants"][name]["wall_time_s"] = _total_wall(done, name)
    data["shared_wall_s"] = {key: info["wall_time_s"] for key, info in done.items()
                             if key in ("collect", "distill") or key.startswith("sft/")}  # fmt: skip
    data["wall_time_s"] = _total_wall(done)


def _total_wall(done: dict[str, dict[str, Any]], variant: str | None = None) -> float:
    """Seconds spent in finished phases (all, or one variant's own `rl/NAME/…` and `eval/NAME…`), over
    every process that worked on this run."""

    def owner(key: str) -> str | None:
        kind, _, rest = key.partition("/")
        return rest.split("/")[0] if kind in ("rl", "eval") else None

    own = [info for key, info in done.items() if variant is None or owner(key) == variant]
    return round(sum(float(info.get("wall_time_s", 0.0)) for info in own), 1)


def rl_updates(rl: dict[str, Any], rl_dir: Path) -> dict[str, Any]:
    """{"updates", "iterations", "curve"} of a finished RL phase: counted from its metrics log, which a
    resume trims to the checkpoint (so every process's iterations count once), else the phase's own
    figures (whose `updates` counts only the iterations of the process that finished it). `curve` is
    the learning curve the ablation report draws (`krill.evaluate.report_rl.learning_curve`)."""
    from krill.evaluate.report_rl import learning_curve, update_counts
    from krill.io import read_jsonl

    log = rl_dir / "metrics.jsonl"
    metrics = list(read_jsonl(log, repair_tail=True)) if log.exists() else []
    counts = update_counts(metrics)
    if counts is not None:
        return {"updates": counts[0], "iterations": counts[1], "curve": learning_curve(metrics)}
    return {"updates": rl.get("updates"), "iterations": rl.get("iterations")}


class _Runner:
    """The phases of one ablation; each is run (or skipped as done) through `Phases`."""

    def __init__(self, cfg: KrillConfig, run_dir: Path, phase: Phases):
        self.cfg, self.run_dir, self.phase = cfg, run_dir, phase
        self._bank0: SkillBank | None = None

    def shared(self) -> None:
        self.phase("collect", lambda: collect_phase(self.cfg, self.run_dir))
        self.phase("distill", lambda: distill_phase(self.cfg, self.run_dir))

    @property
    def bank0(self) -> SkillBank:
        from krill.formats.banks import load_bank

        if self._bank0 is None:
            self._bank0 = load_bank(self.run_dir / "banks" / "cycle_0.json")
        return self._bank0

    def variant(self, name: str, seed: int | None) -> list[tuple[str, dict[str, Any]]]:
        """Train (as the variant says) and evaluate; (table row, the run's entry in ablation.json) pairs."""
        v, cfg = VARIANTS[name], variant_config(self.cfg, name, seed)
        vdir = self.run_dir / "variants" / name / (f"seed_{seed}" if seed is not None else "")
        adapter, bank, updates = None, (self.bank0 if v.context == "skills" else None), None
        if v.sft:
            adapter = self.sft(seed, cfg)
        if v.rl:
            rl = self.phase(f"rl/{name}/seed_{seed}", lambda: self._rl(cfg, vdir, adapter))
            adapter, updates = rl["adapter"], rl_updates(rl, vdir / "rl")
            bank = self._final_bank(rl) if v.context == "skills" else None
        key = f"eval/{name}" + (f"/seed_{seed}" if seed is not None else "")

        def evaluate() -> dict[str, Any]:
            retriever = self.memory(cfg) if v.context == "memory" else None
            return eval_phase(cfg, vdir / "eval.json", bank, adapter=adapter, retriever=retriever)

        rows = [(name, self._run_entry(seed, self.phase(key, evaluate), updates))]
        if v.without_skills:
            bare = cfg.override({"agent.use_skills": False})
            ev = self.phase(f"{key}/no-skills", lambda: eval_phase(bare, vdir / "eval_no_skills.json", None, adapter=adapter))  # fmt: skip
            rows.append((f"{name} without skills", self._run_entry(seed, ev, updates)))
        return rows

    def _run_entry(
        self, seed: int | None, ev: dict[str, Any], updates: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The run's entry in ablation.json: its eval's results and `skills` block (what the prompts
        carried), and for an RL variant its weight updates (`rl_updates`)."""
        result = read_json(ev["path"])
        entry = {
            "seed": seed,
            "eval": str(Path(ev["path"]).relative_to(self.run_dir)),
            "results": result["results"],
        }
        if "skills" in result:  # evals written before the block have none
            entry["skills"] = result["skills"]
        if (result.get("provenance") or {}).get("tasks_sha256"):  # which games: every variant must share them
            entry["tasks_sha256"] = result["provenance"]["tasks_sha256"]
        return entry | ({"rl": updates} if updates is not None else {})

    def sft(self, seed: int | None, cfg: KrillConfig) -> str:
        """The skill-augmented SFT adapter of `seed` under the variant's `cfg`: trained once, shared by
        every variant whose SFT settings are the run's (`sft/seed_S`); a variant that changes them
        (say `sft.*` or `agent.*` overrides) gets its own (`sft/seed_S-<hash of what changed>`)."""
        name = f"seed_{seed}" + sft_suffix(self.cfg, cfg)
        out = self.run_dir / "sft" / name
        return self.phase(f"sft/{name}", lambda: sft_phase(cfg, out, self.bank0))["adapter"]

    def _rl(self, cfg: KrillConfig, vdir: Path, adapter: str | None) -> dict[str, Any]:
        hook = evolve_hook_for(cfg, vdir / "rl", vdir / "banks")
        init = Path(adapter) if adapter else None
        return rl_phase(cfg, vdir / "rl", self.bank0, init=init, evolve_hook=hook)

    def _final_bank(self, rl: dict[str, Any]) -> SkillBank:
        from krill.formats.banks import load_bank

        return load_bank(rl["bank"])

    def memory(self, cfg: KrillConfig) -> Any:
        """The raw-trajectory memory over this run's collection (the trajectories distillation read)."""
        from krill.skills.memory import build_memory_retriever

        return build_memory_retriever(collected_trajectories(self.run_dir), cfg)
