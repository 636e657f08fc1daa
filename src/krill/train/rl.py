"""GRPO for the skill-augmented agent (SkillRL §3.4), as a recipe: setup → (iteration → save)* → export.

One iteration:
1. pick `rl.batch_size / rl.group_size` train tasks (seeded by iteration), G copies each; with
   `rl.guidance`, some copies replay an expert prefix first (`krill.train.guidance`);
2. roll out with `LLMActor` at `cfg.sampling("rollout")` (`rl.temperature`), skills retrieved from
   the current bank (fewer as iterations pass under `skills.curriculum`);
3. reward R_i = episode return − invalid_action_penalty × #invalid actions; A_i = group z-score
   (`krill.train.grpo.group_advantages`); with `rl.advantage: gigpo`, plus ω × each step's z-score
   among the group's steps from the same anchor state (`krill.train.grpo.step_advantages`);
   with `rl.dynamic_sampling`, zero-variance groups are replaced by new tasks' groups first (DAPO);
   with `rl.guidance: mixed`, a group whose plain rollouts all failed gets the expert's episode;
4. samples (`krill.train.samples`): every LLM step of trajectory i carries A_i (window mode), or the
   whole trajectory is one sample scored in one pass (conversation mode); under
   `agent.constrain_actions` each decision is scored over its admissible actions (the choice policy);
5. `krill.train.update.grpo_update`: clipped surrogate (+ KL when `rl.kl_coef` > 0) over
   token-budgeted micro-batches;
6. the iteration's episodes go to `OUT/rollouts/iter_K.jsonl`; every `evolution.validation_interval`
   iterations, the evolution hook may return a new bank.

Samples from zero-variance groups (all won / all lost) have A = 0: they would only add the KL pull
toward the reference, so they are dropped from the update (counted in `groups/zero_variance`), and an
iteration with no informative group skips the update (`update/skipped`).

Shared setup (Accelerator, trainable policy, optimizer, metrics) lives in `krill.train.setup`, used by
SFT too; `OUT/checkpoints/` makes a run resumable iteration by iteration.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from krill.agent.prompts import make_retriever
from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import read_jsonl
from krill.progress import progress_bar
from krill.schema import SkillBank, Trajectory
from krill.skills.evolved import evolved_skill_ids
from krill.train import checkpoint as ckpt_io
from krill.train.grpo import group_advantages, zero_variance_groups
from krill.train.guidance import (
    Slot,
    all_failed,
    expert_actions,
    group_by,
    guided_steps,
    next_fraction,
    plan_slots,
)
from krill.train.metrics import MetricsLogger, drawn_success, group_metrics, iteration_metrics
from krill.train.samples import build_samples, gigpo_step_advantages, shaped_rewards
from krill.train.setup import (
    load_training_policy,
    make_accelerator,
    make_optimizer,
    pad_id,
    trim_metrics,
    weights_config,
)
from krill.train.update import grpo_update, reference_state

if TYPE_CHECKING:
    from krill.envs.base import Pool

log = logging.getLogger(__name__)

# (iteration, the trained policy, the current bank, this iteration's trajectories) → the evolved bank
# (or None to keep it); `krill.train.evolution.make_evolve_hook` builds the default one.
EvolveHook = Callable[[int, Any, SkillBank, list[Trajectory]], "SkillBank | None"]


@dataclass
class RlResult:
    out_dir: Path
    adapter_dir: Path
    bank_path: Path
    iterations: int
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def updates(self) -> int:
        """Iterations of this process that changed the weights (the others had only zero-variance groups)."""
        return sum(1 for m in self.metrics if m.get("update/skipped") == 0.0)


def _train_tasks(available: list[str], cfg: KrillConfig) -> list[str]:
    """The train split's tasks, or `rl.tasks` (each must be one of them)."""
    if not available:
        raise KrillError(f"the {cfg.env.name} train split has no tasks")
    if not cfg.rl.tasks:
        return list(available)
    known = set(available)
    for i, task in enumerate(cfg.rl.tasks):
        if task not in known:
            raise KrillError(f"rl.tasks[{i}]: {task!r} is not a task of the {cfg.env.name} train split")
    return list(cfg.rl.tasks)


def pick_tasks(task_ids: list[str], iteration: int, n: int, seed: int, round_: int = 0) -> list[str]:
    """The tasks of one iteration (or of its dynamic-sampling round `round_`): a seeded sample, the
    same whether the run was resumed or not."""
    rng = random.Random(f"krill-rl:{seed}:{iteration}" + (f":{round_}" if round_ else ""))
    return rng.sample(task_ids, min(n, len(task_ids)))


def _informative(group: list[Trajectory], penalty: float) -> bool:
    """Do the group's shaped rewards differ (so its advantages are not all 0)?"""
    return zero_variance_groups(shaped_rewards(group, penalty), torch.zeros(len(group))) == 0


class GrpoRecipe:
    """One GRPO run. `policy` and `pool` may be given (tests pass small ones); otherwise they are built
    from `cfg` (the policy trainable from `init`, the pool over the train split) and owned here."""

    def __init__(self, cfg: KrillConfig, bank: SkillBank, out_dir: str | Path, *, init: str | Path | None = None,
                 resume: bool = False, evolve_hook: EvolveHook | None = None, policy: Any = None,
                 pool: Pool | None = None):  # fmt: skip
        if init is not None and not Path(init).exists():
            raise KrillError("--init folder not found", path=init)
        self.cfg, self.bank, self.out_dir, self.init, self.resume = cfg, bank, Path(out_dir), init, resume
        self.evolve_hook, self.policy, self.pool, self.own_pool = evolve_hook, policy, pool, pool is None
        self.start = 0
        self.history: list[dict[str, Any]] = []  # metrics rows of the iterations run so far
        self.experts: dict[str, list[str] | None] = {}  # task → the expert's winning actions (guidance)
        self.guide_fraction = cfg.rl.guide_fraction

    # -- setup / load / save ---------------------------------------------------------------------------
    def setup(self) -> None:
        """Accelerator, trainable policy, π_ref, optimizer, resume state, rollout policy, pool, retriever."""
        cfg, rl = self.cfg, self.cfg.rl
        self.accel = make_accelerator(cfg)
        if self.accel.is_main_process:  # first: a resume with other settings is refused before any write
            # a resume may continue the schedule (more iterations), nothing else
            ckpt_io.write_run_config(cfg, self.out_dir, check=self.resume, may_grow=("rl.iterations",))
        if self.policy is None:
            self.policy = load_training_policy(weights_config(cfg), self.init, self.accel.device)
        self.reference = (
            reference_state(self.policy.model, self.out_dir, self.resume, self.accel)
            if rl.kl_coef > 0
            else None
        )
        optimizer = make_optimizer(self.policy.model, rl.learning_rate)
        self.model, self.optimizer = self.accel.prepare(self.policy.model, optimizer)
        self.tok, self.pad_id = self.policy.tokenizer, pad_id(self.policy.tokenizer)
        self.start = self.load()
        for log_name in ("metrics.jsonl", "evolution.jsonl"):  # lines past the checkpoint are logged again
            trim_metrics(self.out_dir / log_name, "iteration", self.start)
        # earlier iterations' rows: skills.curriculum=success withdraws categories that already succeeded
        metrics_path = self.out_dir / "metrics.jsonl"
        self.history = list(read_jsonl(metrics_path)) if self.start and metrics_path.exists() else []
        if self.history and "guide/fraction_next" in self.history[-1]:  # the prefix schedule goes on
            self.guide_fraction = float(self.history[-1]["guide/fraction_next"])
        self.logger = MetricsLogger(self.out_dir, enabled=self.accel.is_main_process,
                                    report_to=cfg.train.report_to, run_config=cfg.to_public_dict())  # fmt: skip
        self.rollout_policy = self._rollout_policy(self.start)
        self.n_tasks = max(1, rl.batch_size // rl.group_size)
        if self.pool is None:
            from krill.envs.pool import make_pool

            size = max(1, min(cfg.model.policy.batch_size, self.n_tasks * rl.group_size))
            self.pool = make_pool(cfg, "train", size)
        self.train_tasks = _train_tasks(self.pool.task_ids(), cfg)
        self.retriever = make_retriever(self.bank, cfg)

    def load(self) -> int:
        """The iteration to start from: the latest checkpoint's when resuming (its bank too), else 0."""
        from krill.formats.banks import load_bank

        model = self.accel.unwrap_model(self.model)
        state = ckpt_io.resume_checkpoint(self.out_dir, model, self.optimizer) if self.resume else None
        if state is None:
            return 0
        bank = Path(str(state.get("bank_path", ""))).resolve()
        if not bank.is_relative_to(self.out_dir.resolve()):  # a checkpoint names a bank of its own run only
            raise KrillError(
                "the checkpoint's bank_path is not a file of this run", path=self.out_dir / "checkpoints"
            )
        self.bank = load_bank(bank)
        log.info("rl: resuming from iteration %d of %d", state["step"], self.cfg.rl.iterations)
        return state["step"]

    def save(self, done: int) -> None:
        """Checkpoint after `done` iterations: weights, optimizer, RNG and the bank of that moment."""
        from krill.formats.banks import save_bank

        if self.accel.is_main_process:
            bank_path = self.out_dir / "banks" / f"bank_iter_{done:04d}.json"
            save_bank(self.bank, bank_path)
            extra = {"iteration": done, "bank_path": str(bank_path), "config": self.cfg.to_public_dict()}
            ckpt_io.save_checkpoint(
                self.out_dir, done, self.accel.unwrap_model(self.model), self.optimizer, extra
            )
        self.accel.wait_for_everyone()

    def export(self, metrics: list[dict[str, Any]]) -> RlResult:
        """The final adapter (HF format) and bank."""
        from krill.formats.banks import save_bank

        adapter_dir, bank_path = self.out_dir / "adapter", self.out_dir / "bank.json"
        if self.accel.is_main_process:
            ckpt_io.export_model(self.accel.unwrap_model(self.model), self.tok, adapter_dir, self.cfg)
            save_bank(self.bank, bank_path)
        return RlResult(self.out_dir, adapter_dir, bank_path, self.cfg.rl.iterations, metrics)

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self) -> RlResult:
        """setup → iterations from the resume point (checkpointing every `rl.checkpoint_every`) → export,
        holding the output folder's writer lock (`krill.runlock`)."""
        from krill.runlock import run_lock

        with run_lock(self.out_dir, "rl"):
            return self._run()

    def _run(self) -> RlResult:
        rl = self.cfg.rl
        self.setup()
        rows: list[dict[str, Any]] = []
        try:
            with progress_bar("rl", rl.iterations) as bar:
                bar.advance(self.start)
                for it in range(self.start, rl.iterations):
                    row = self.iteration(it)
                    self.logger.log(it + 1, row)
                    rows.append(row)
                    self.history.append(row)
                    if row.get("update/skipped"):
                        log.info(
                            "rl: iteration %d: update skipped: every group's rollouts got the same reward "
                            "(%d of %d groups), so no advantage to learn from",
                            it + 1, row.get("groups/zero_variance", 0), self.n_tasks,
                        )  # fmt: skip
                    bar.advance()
                    bar.status(
                        f"reward {row['rollout/reward']:.2f} succ {row['charts/success_rate']:.2f} bank {len(self.bank)}"
                    )
                    if (it + 1) % rl.checkpoint_every == 0 or it + 1 == rl.iterations:
                        self.save(it + 1)
        finally:
            self.close()
        return self.export(rows)

    def iteration(self, it: int) -> dict[str, float]:
        """Roll out this process's share of the iteration's groups, update, maybe evolve; the metrics row."""
        rl = self.cfg.rl
        t0 = time.perf_counter()
        groups = self.rollout_groups(it, self.tasks_for(it))
        resampling: dict[str, float] = {}
        drawn: list[list[Trajectory]] = groups
        if rl.dynamic_sampling:
            groups, drawn, resampling = self.refill(it, groups)
        if rl.guidance == "mixed":
            groups = self.add_expert_members(it, groups)
        trajs = [t for g in groups for t in g]
        group_ids = torch.tensor([i for i, g in enumerate(groups) for _ in g])
        t1 = time.perf_counter()
        rewards = shaped_rewards(trajs, rl.invalid_action_penalty)
        adv = group_advantages(rewards, group_ids) if trajs else torch.zeros(0)
        per_step = gigpo_step_advantages(trajs, adv, group_ids, rl) if rl.advantage == "gigpo" else None
        samples = build_samples(trajs, adv, self.tok, per_step, choice=self.cfg.agent.constrain_actions)
        upd = grpo_update(self.model, self.optimizer, samples, self.cfg, self.accel, self.pad_id,
                          self.reference, end_of_turn=self.tok.eos_token_id)  # fmt: skip
        t2 = time.perf_counter()
        zero_var = zero_variance_groups(rewards, group_ids) if trajs else 0
        own = [
            t.metadata.get("guide") != "expert" for t in trajs
        ]  # expert members are not the policy's rollouts
        mine, keep = [t for t, o in zip(trajs, own, strict=True) if o], torch.tensor(own, dtype=torch.bool)
        row = {**iteration_metrics(mine, rewards[keep], adv[keep], zero_var, self.accel), **upd, **resampling}
        row.update(group_metrics(groups, rl.invalid_action_penalty, evolved_skill_ids(self.bank)))
        if rl.dynamic_sampling:  # success over what was drawn, not the kept (mixed-outcome) groups
            row["sampling/success_kept"] = row["charts/success_rate"]
            row.update(drawn_success([t for g in drawn for t in g], self.accel))
        row.update({"time/rollout_s": t1 - t0, "time/update_s": t2 - t1, "time/iteration_s": t2 - t0})
        if rl.guidance != "none":
            row["guide/fraction"] = self.guide_fraction
            self.guide_fraction = next_fraction(self.guide_fraction, trajs, rl.guide_decay)
            row["guide/fraction_next"] = self.guide_fraction
        self.save_rollouts(it + 1, groups, adv)
        if self.evolve_hook is not None and (it + 1) % self.cfg.evolution.validation_interval == 0:
            self.bank = self.evolve_hook(it + 1, self.policy, self.bank, trajs) or self.bank
            self.retriever = make_retriever(self.bank, self.cfg)
            row["bank/size"] = float(len(self.bank))
        if self.rollout_policy is not self.policy:
            self.rollout_policy = self._rollout_policy(it + 1)
        return row

    def save_rollouts(self, iteration: int, groups: list[list[Trajectory]], adv: torch.Tensor) -> None:
        """This iteration's episodes, as trajectories with their group and advantage, in
        `rl/rollouts/iter_K.jsonl` (rewritten whole, so a resumed iteration leaves one copy)."""
        from krill.formats.trajectories import save_trajectories

        trajs = [t.model_copy(update={"metadata": {**t.metadata, "group": g, "guided_steps": guided_steps(t)}})
                 for g, group in enumerate(groups) for t in group]  # fmt: skip
        for t, a in zip(trajs, adv.tolist(), strict=True):
            t.metadata["advantage"] = round(a, 6)
        suffix = f".rank{self.accel.process_index}" if self.accel.num_processes > 1 else ""
        save_trajectories(self.out_dir / "rollouts" / f"iter_{iteration}{suffix}.jsonl", trajs)

    def tasks_for(self, it: int, round_: int = 0) -> list[str]:
        """This process's share of the iteration's tasks (or of a dynamic-sampling round's)."""
        tasks = pick_tasks(self.train_tasks, it, self.n_tasks, self.cfg.rl.seed, round_)
        return tasks[self.accel.process_index :: self.accel.num_processes]

    def rollout_groups(self, it: int, tasks: list[str], round_: int = 0) -> list[list[Trajectory]]:
        """G episodes of each task as GRPO groups: one per task, or (`rl.guidance`) one of the
        rollouts that start from the beginning and one of those that replay an expert prefix."""
        rl = self.cfg.rl
        if rl.guidance == "none":
            slots = [Slot(t, i) for i, t in enumerate(tasks) for _ in range(rl.group_size)]
        else:
            experts = self.expert_runs(tasks)
            slots = plan_slots(tasks, rl.group_size, rl.guided_rollouts, self.guide_fraction, experts)
        guides = {i: list(s.guide) for i, s in enumerate(slots) if s.guide}
        return group_by(self.rollout(it, [s.task for s in slots], round_, guides), slots)

    def expert_runs(self, tasks: list[str]) -> dict[str, list[str] | None]:
        """The env expert's actions on each task (None where it did not win within the RL step cap);
        played once per task and kept: the expert and the games are deterministic."""
        from krill.agent.actors import ExpertActor
        from krill.agent.rollout import run_episodes

        todo = [t for t in dict.fromkeys(tasks) if t not in self.experts]
        if todo:
            runs = run_episodes(ExpertActor(), self.pool, todo, max_steps=self.cfg.rl.max_steps,
                                split="train")  # fmt: skip
            self.experts.update({t: expert_actions(r) for t, r in zip(todo, runs, strict=True)})
        return {t: self.experts[t] for t in tasks}

    def add_expert_members(self, it: int, groups: list[list[Trajectory]]) -> list[list[Trajectory]]:
        """`rl.guidance: mixed`: the expert's whole episode joins each unguided group that all failed."""
        failed = [g for g in groups if all_failed(g)]
        tasks = [g[0].metadata.get("task_id") for g in failed]
        experts = self.expert_runs([t for t in tasks if t])
        todo = [(g, t) for g, t in zip(failed, tasks, strict=True) if t and experts.get(t)]
        if todo:
            runs = self.rollout(
                it,
                [t for _, t in todo],
                0,
                {i: list(experts[t]) for i, (_, t) in enumerate(todo)},
                kind="expert",
            )
            for (group, _), run in zip(todo, runs, strict=True):
                run.metadata["guide"] = "expert"  # off-policy: trained with LUFFY's shaped weight
                group.append(run)
        return groups

    def refill(
        self, it: int, groups: list[list[Trajectory]]
    ) -> tuple[list[list[Trajectory]], list[list[Trajectory]], dict[str, float]]:
        """DAPO's dynamic sampling: keep the groups whose rewards differ and roll out new tasks' groups
        (at most `rl.max_resample_rounds` more rounds) until there are as many as the batch had;
        (kept groups, every group drawn, stats).

        With no informative group at all, the first round's groups stay (the update is then skipped)."""
        rl = self.cfg.rl
        want, rounds, everything = len(groups), 0, list(groups)
        keep = [g for g in groups if _informative(g, rl.invalid_action_penalty)]
        while len(keep) < want and rounds < rl.max_resample_rounds:
            rounds += 1
            more = self.rollout_groups(it, self.tasks_for(it, rounds), rounds)
            everything += more
            keep += [g for g in more if _informative(g, rl.invalid_action_penalty)]
        drawn = len(everything)
        stats = {"sampling/groups_drawn": float(drawn), "sampling/groups_dropped": float(drawn - len(keep)),
                 "sampling/rounds": float(rounds), "sampling/groups_kept": float(min(len(keep), want))}  # fmt: skip
        return (keep[:want] or groups), everything, stats

    def rollout(self, it: int, task_list: list[str], round_: int = 0,
                guides: dict[int, list[str]] | None = None, kind: str = "policy") -> list[Trajectory]:  # fmt: skip
        """Sampled episodes of `task_list`, log-probs recorded (GRPO re-scores them); `guides`: episode
        index → expert actions it plays first. Ids name the episode's place in the run
        (`rl:<iteration>:<round>:<process>:<kind>:<index>`), so a resumed run records what an
        uninterrupted one does (evolved skills cite them as provenance)."""
        from krill.agent.actors import LLMActor
        from krill.agent.rollout import run_episodes
        from krill.skills.curriculum import curriculum_retriever

        if not task_list:
            return []
        rl = self.cfg.rl
        # round 0 keeps the seeds runs had before dynamic sampling; each later round gets its own
        seed = (rl.seed * 1_000_003 + it) * 64 + self.accel.process_index + 1_000_000_007 * round_
        retriever = curriculum_retriever(self.retriever, self.cfg, it, self.history)
        actor = LLMActor(self.rollout_policy, retriever, self.cfg, self.cfg.sampling("rollout"),
                         want_logprobs=True, seed=seed, guides=guides)  # fmt: skip
        self.model.eval()
        runs = run_episodes(
            actor, self.pool, task_list, max_steps=rl.max_steps, seed=rl.seed + it + 7919 * round_,
            split="train",
        )  # fmt: skip
        for k, run in enumerate(runs):
            run.id = f"rl:{it}:{round_}:{self.accel.process_index}:{kind}:{k}"
        return runs

    def close(self) -> None:
        if self.own_pool and self.pool is not None:
            self.pool.close()
        if getattr(self, "logger", None) is not None:
            self.logger.close()

    def _rollout_policy(self, iteration: int) -> Any:
        """The local policy itself, or (backend openai) the server after loading the latest adapter into it."""
        if self.cfg.model.policy.backend == "local":
            return self.policy
        from krill.train.remote import RemoteRollouts

        return RemoteRollouts.after_update(self.cfg, self.policy, self.out_dir, iteration, self.accel)


def run_rl(cfg: KrillConfig, bank: SkillBank, out_dir: str | Path, init: str | Path | None = None,
           resume: bool = False, evolve_hook: EvolveHook | None = None, *, policy: Any = None,
           pool: Pool | None = None) -> RlResult:  # fmt: skip
    """GRPO iterations from `init` (an SFT adapter) or the base model; checkpoints make it resumable."""
    return GrpoRecipe(cfg, bank, out_dir, init=init, resume=resume, evolve_hook=evolve_hook, policy=policy,
                      pool=pool).run()  # fmt: skip
