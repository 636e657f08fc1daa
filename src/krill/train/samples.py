"""GRPO's training samples: trajectories → token sequences with an action mask and an advantage.

Window mode (`agent.context: window`): every LLM step is one sample, its prompt → its response.
Conversation mode: a whole episode is one sample (its contexts and replies as the decoder saw them,
built by appending, never re-tokenized), every reply's tokens carrying the trajectory's A_i.
With GiGPO (`rl.advantage: gigpo`) each step's reply carries its own A_{i,t} instead of A_i.
Log-probs come from `krill.models.logprobs`, the one implementation rollout scoring and SFT share.

Choice mode (`agent.constrain_actions`): the policy that acted is the choice distribution π_T(a|s)
over the admissible actions (`krill.models.choices`), so each decision is one `ChoiceStep` (where its
prompt ends in the sample's ids, the options' ids, the one taken, its advantage) and the update
scores all options of all steps teacher-forced (`choice_step_logprobs`). Steps the expert played as
a guide prefix stay in the ids as context and carry no gradient; an expert episode added to a group
(`rl.guidance: mixed`) carries gradient as off-policy steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from krill.models.choices import StepOptions, choice_logprobs, step_choice_scores
from krill.models.decoding import cache_kwarg
from krill.models.logprobs import left_pad, trailing_logprobs
from krill.schema import Trajectory

if TYPE_CHECKING:
    from krill.config import RlConfig


@dataclass
class ChoiceStep:
    """One decision of a sample in choice mode: its prompt is `ids[:end]`."""

    end: int
    options: list[list[int]]  # the admissible actions' token ids, as the decoder scored them
    chosen: int
    advantage: float
    recorded: float | None = None  # log π_T(chosen) the rollout recorded (None: the expert chose it)
    off_policy: bool = False  # an expert episode's action (LUFFY): no behaviour log-prob to divide by


@dataclass
class Sample:
    """Token ids the policy saw and wrote, scored in one pass; `action_mask` 1 on its own tokens.

    Window mode: one agent step (prompt → response). Conversation mode: a whole episode (its
    contexts and replies as the decoder saw them), or the part since its chat was last cut.
    Every action token carries `advantage`, the trajectory's A_i.
    """

    ids: list[int]
    action_mask: list[int]
    advantage: float
    token_advantages: list[float] | None = None  # per position (GiGPO: each reply its step's A_{i,t})
    choice_steps: list[ChoiceStep] | None = None  # choice mode: the decisions scored over their options

    def __len__(self) -> int:
        """Positions a forward pass computes: the ids, and in choice mode every option's tokens."""
        extra = sum(len(o) + 1 for c in self.choice_steps for o in c.options) if self.choice_steps else 0
        return len(self.ids) + extra

    def advantage_row(self, width: int) -> list[float]:
        """The advantage of the last `width` positions (left-padded with 0), as `sequence_logprobs` scores them."""
        per = self.token_advantages or [self.advantage] * len(self.ids)
        return ([0.0] * width + per)[-width:]

    @property
    def scored_span(self) -> int:
        """Positions from the first action token to the end: the logits a forward pass must keep."""
        return len(self.ids) - self.action_mask.index(1) if 1 in self.action_mask else 0


def shaped_rewards(trajs: list[Trajectory], penalty: float) -> torch.Tensor:
    """R_i = episode return − penalty × number of invalid actions."""
    return torch.tensor([t.total_reward - penalty * t.num_invalid for t in trajs], dtype=torch.float32)


def step_rewards(traj: Trajectory, penalty: float) -> list[float]:
    """r_t = the step's reward − penalty if its action was invalid (they sum to the shaped R_i)."""
    return [s.reward - penalty * (s.valid is False) for s in traj.steps]


def gigpo_step_advantages(
    trajs: list[Trajectory], episode_adv: torch.Tensor, group_ids: torch.Tensor, rl: RlConfig
) -> list[list[float]]:
    """GiGPO's A_{i,t} = A^E_i + ω·A^S_{i,t} for every step (`krill.train.grpo`), from `rl.gamma`,
    `rl.step_advantage_weight` and the invalid-action penalty."""
    from krill.train.grpo import anchor_state, discounted_returns, gigpo_advantages, step_advantages

    returns = [discounted_returns(step_rewards(t, rl.invalid_action_penalty), rl.gamma) for t in trajs]
    anchors = [[anchor_state(s.observation) for s in t.steps] for t in trajs]
    a_step = step_advantages(returns, anchors, group_ids.tolist())
    return gigpo_advantages(episode_adv, a_step, rl.step_advantage_weight)


def build_samples(
    trajs: list[Trajectory],
    advantages: torch.Tensor,
    tokenizer: Any,
    step_advantages: list[list[float]] | None = None,
    *,
    choice: bool = False,
) -> list[Sample]:
    """Samples of every trajectory with a non-zero advantage (A_i, or any A_{i,t} when per-step
    `step_advantages` are given): one per episode segment when its steps recorded appended context
    ids (conversation mode), else one per step from its prompt text. `choice`: decisions as
    `ChoiceStep`s (steps that recorded their choices; others are context). A trajectory that recorded
    no choices at all (an env without admissible actions decodes freely) is trained per token."""
    out = []
    for i, (traj, adv) in enumerate(zip(trajs, advantages.tolist(), strict=True)):
        per_step = step_advantages[i] if step_advantages is not None else None
        if adv != 0.0 or any(per_step or ()):
            # an env with no admissible list was decoded freely: its tokens are the policy's own
            chose = choice and any("choices" in (s.model_extra or {}) for s in traj.steps)
            samples = trajectory_samples(traj, adv, tokenizer, per_step, choice=chose)
            out.extend(s for s in samples if not chose or s.choice_steps)
    return out


def trajectory_samples(
    traj: Trajectory,
    advantage: float,
    tokenizer: Any,
    step_advantages: list[float] | None = None,
    *,
    choice: bool = False,
) -> list[Sample]:
    """The sequences of one trajectory: its steps' contexts followed by their responses, each
    response's tokens carrying its step's advantage (`step_advantages[t]`, else `advantage`); in
    `choice` mode each decision is also a `ChoiceStep` at the position where its prompt ends."""
    out: list[Sample] = []
    ids: list[int] = []
    mask: list[int] = []
    advs: list[float] = []
    decisions: list[ChoiceStep] = []
    expert = traj.metadata.get("guide") == "expert"

    def sample(ids: list[int], mask: list[int], advs: list[float]) -> Sample:
        return Sample(ids, mask, advantage, advs if step_advantages is not None else None,
                      decisions if choice else None)  # fmt: skip

    for t, step in enumerate(traj.steps):
        a_t = step_advantages[t] if step_advantages is not None else advantage
        extra = step.model_extra or {}
        resp = list(extra.get("response_token_ids") or [])
        if extra.get("error"):
            continue
        trained = not extra.get("guided") or expert  # a guide prefix is context, not the policy's action
        if "context_ids" in extra:  # conversation: the context grows by appending, until a rebuild
            if extra.get("context_reset") and ids:
                out.append(sample(ids, mask, advs))
                ids, mask, advs, decisions = [], [], [], []
            context = list(extra["context_ids"])
        elif resp and extra.get("prompt_text"):  # window (or a remote server): one prompt per step
            context = tokenizer(extra["prompt_text"], add_special_tokens=False)["input_ids"]
            own = [*context, *resp]
            decision = _choice_step(extra, len(context), a_t, tokenizer) if choice and trained else None
            out.append(Sample(own, [0] * len(context) + [int(trained)] * len(resp), a_t, None,
                              ([decision] if decision else []) if choice else None))  # fmt: skip
            continue
        else:
            continue
        ids += context
        if choice and trained and (c := _choice_step(extra, len(ids), a_t, tokenizer)):
            decisions.append(c)
        ids += resp
        mask += [0] * len(context) + [int(trained)] * len(resp)
        advs += [0.0] * len(context) + [a_t] * len(resp)
    if ids:
        out.append(sample(ids, mask, advs))
    return [s for s in out if 1 in s.action_mask]


def _choice_step(extra: dict, end: int, advantage: float, tokenizer: Any) -> ChoiceStep | None:
    """The step's decision among its recorded choices (off-policy when the expert played it); None
    when it had fewer than two (no decision)."""
    choices, k = extra.get("choices"), extra.get("choice_index")
    if not choices or k is None or len(choices) < 2:
        return None
    options = tokenizer(list(choices), add_special_tokens=False)["input_ids"]
    guided = bool(extra.get("guided"))
    return ChoiceStep(
        end, options, int(k), advantage, None if guided else extra.get("choice_logprob"), guided
    )


def token_budget_batches(samples: list[Sample], budget: int) -> list[list[Sample]]:
    """Pack samples (sorted by length) into micro-batches with count × longest ≤ budget tokens.

    A sample longer than the budget gets a micro-batch of its own (one sequence must always fit);
    token-mode and choice-mode samples never share one (they are scored differently).
    """
    batches: list[list[Sample]] = []
    cur: list[Sample] = []
    for s in sorted(samples, key=lambda s: (s.choice_steps is not None, len(s))):
        kind_changes = cur and (cur[-1].choice_steps is None) != (s.choice_steps is None)
        if cur and (kind_changes or (len(cur) + 1) * len(s) > budget):
            batches.append(cur)
            cur = []
        cur.append(s)
    if cur:
        batches.append(cur)
    return batches


def sequence_logprobs(model: Any, batch: list[Sample], pad_id: int, device: Any, *, entropy: bool = False):
    """Log-probs of each sample's tokens from its first action token on: (logp [b, R], mask [b, R],
    entropy [b, R] | None); `mask` is the samples' action mask over those positions.

    Left padding aligns every row's end, so only the last R positions are scored (R = the longest
    span from a first action token to the end: the response in window mode, the episode's replies
    and the observations between them in conversation mode).
    """
    ids, attn = left_pad([s.ids for s in batch], pad_id, device)  # [b, L]
    R = max(s.scored_span for s in batch)
    logp, ent = trailing_logprobs(model, ids, attn, R, entropy=entropy)  # [b, R]
    mask = torch.tensor([([0] * R + s.action_mask)[-R:] for s in batch], device=device).float()  # [b, R]
    return logp, mask, ent


@dataclass
class ChoiceScores:
    """log π_T(chosen|s) of every decision of a micro-batch [S] (with grad when enabled) and what goes with it."""

    logp: torch.Tensor  # [S]
    entropy: torch.Tensor  # [S] of each step's choice distribution (detached)
    advantages: torch.Tensor  # [S]
    off_policy: torch.Tensor  # [S] 1 for an expert's action
    recorded: torch.Tensor  # [S] the rollout's log π_T(chosen) (NaN where none)


def choice_step_logprobs(model: Any, batch: list[Sample], pad_id: int, end: int, temperature: float,
                         mode: str = "sum") -> ChoiceScores:  # fmt: skip
    """π_T of every decision of the batch: all options of all steps scored teacher-forced in two
    forward passes (`krill.models.choices.step_choice_scores`), then a log-softmax at temperature T."""
    steps = [[StepOptions(c.end, c.options) for c in s.choice_steps or []] for s in batch]
    scores = step_choice_scores(model, [s.ids for s in batch], steps, pad_id, end, cache_kwarg(model), mode)
    logps, ents = [], []
    for row, s in zip(scores, batch, strict=True):
        for sc, c in zip(row, s.choice_steps or [], strict=True):
            lp = choice_logprobs(sc, temperature)  # [C]
            logps.append(lp[c.chosen])
            ents.append(-(lp.exp() * lp).sum().detach())
    decisions = [c for s in batch for c in s.choice_steps or []]
    device = logps[0].device if logps else torch.device("cpu")
    return ChoiceScores(
        torch.stack(logps) if logps else torch.zeros(0, device=device),
        torch.stack(ents) if ents else torch.zeros(0, device=device),
        torch.tensor([c.advantage for c in decisions], device=device, dtype=torch.float32),
        torch.tensor([float(c.off_policy) for c in decisions], device=device),
        torch.tensor(
            [c.recorded if c.recorded is not None else float("nan") for c in decisions], device=device
        ),
    )
