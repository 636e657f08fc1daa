"""The config schema: one pydantic tree. Defaults are the paper's; every field documents itself.

Secrets never live in config: only the *name* of the environment variable holding a key
(`api_key_env`) is stored. Loading (presets, files, `--set`) is `krill.config_load`; what keys mean
for people is `krill.config_keys`; `krill.config` gathers the public names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from krill.config_renames import apply_renames
from krill.secrets import mask_urls

PRESETS = ("tiny", "quick", "gpu-small", "paper")
Phase = Literal["collect", "eval", "validation", "rollout"]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings handed to an actor by the phase that runs it (`KrillConfig.sampling`)."""

    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 64


class _Section(BaseModel):
    # read-only once loaded: a phase that needs other settings derives its own (`KrillConfig.override`)
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False
    )  # .inf/.nan are never settings


class EndpointConfig(_Section):
    backend: Literal["local", "openai"] = Field(
        "local", description="local | openai (any OpenAI-compatible server)"
    )
    model: str = Field("", description="HF id/path (local) or model name on the server (openai)")
    api_base: str | None = Field(
        None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the env var holding the API key")
    concurrency: int = Field(16, ge=1, description="max concurrent requests (openai backend)")
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    max_retries: int = Field(5, ge=0, description="retries on 429/5xx/timeouts, exponential backoff")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None


class PolicyConfig(EndpointConfig):
    model: str = Field(
        "smollm2",
        description="'smollm2' (embedded default), 'tiny' (random test model), 'random:smollm2-360m' (a real "
        "shape with random weights, for speed checks), HF id/path",
    )
    adapter: str | None = Field(None, description="path to a PEFT adapter to load on top of the model")
    dtype: str = Field(
        "auto", description="auto | float32 | bfloat16 | float16 (auto: bf16 on GPU, fp32 on CPU)"
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    max_new_tokens: int = Field(
        64,
        ge=1,
        description="most tokens of one reply, in every phase (collection, evaluation, validation, RL rollouts); "
        "formerly also rl.max_response_length",
    )
    temperature: float = Field(
        0.0,
        ge=0,
        description="the policy's temperature when collecting (`krill collect`, the train run's untrained "
        "episodes); 0 = greedy. Evaluation reads eval.temperature, RL rollouts rl.temperature",
    )
    top_p: float = Field(
        1.0, gt=0, le=1, description="nucleus sampling mass (1 = off); every phase shares it"
    )
    batch_size: int = Field(8, ge=1, description="episodes generated per forward pass")
    static_cache: bool | None = Field(
        None,
        description="local policy: decode on a preallocated KV cache whose one-token step is captured as a CUDA "
        "graph and replayed (krill.models.static_decode), each chat's states kept in place in its slots across "
        "calls (krill.models.chat_slots; the same tokens and log-probs); unset: on CUDA only",
    )
    guided_choice: Literal["none", "vllm", "json_schema"] = Field(
        "none",
        description="how a served policy honours agent.constrain_actions: vllm (the admissible actions as "
        "vLLM's guided_choice / structured_outputs.choice), json_schema (OpenAI structured outputs: "
        '{"action": <one of them>}), none (the option is turned off for served policies, with a notice)',
    )


class TeacherConfig(EndpointConfig):
    backend: Literal["analytic", "llm"] = Field(  # type: ignore[assignment]  # teachers have their own backends
        "analytic", description="analytic (offline, grounded in the data) | llm (OpenAI-compatible)"
    )
    model: str = Field("o3", description="teacher model name on the server")
    temperature: float = Field(0.3, ge=0, description="teacher sampling temperature (llm backend)")
    max_tokens: int = Field(2048, ge=16, description="longest teacher answer, tokens (llm backend)")


class EmbeddingConfig(EndpointConfig):
    model: str = Field(
        "all-MiniLM-L6-v2", description="sentence-transformers model (embedded default) or server model"
    )
    batch_size: int = Field(64, ge=1, description="texts embedded per call")


class ModelConfig(_Section):
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="the agent being trained")
    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig, description="distils skills from trajectories"
    )
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig, description="embeds tasks and skills")


class AlfworldConfig(_Section):
    data_dir: str | None = Field(
        None, description="real ALFWorld data (json_2.1.1); else $ALFWORLD_DATA; else generated"
    )
    games_dir: str | None = Field(None, description="generated games folder (default: the krill cache)")
    train_games: int = Field(1000, ge=1, description="games generated for the train split on first use")
    valid_seen_games: int = Field(140, ge=1, description="eval_in_distribution size")
    valid_unseen_games: int = Field(134, ge=1, description="eval_out_of_distribution size")
    max_steps: int = Field(50, ge=1, description="ALFWorld step limit")
    expert: Literal["oracle", "search"] = Field(
        "oracle",
        description="oracle: shortest plans from the true state; search: looks into receptacles it has not seen "
        "(like ALFWorld's hand-coded expert; longer, more learnable demos)",
    )
    reward: Literal["success", "progress"] = Field(
        "success",
        description="success: 10 at the step the game is won (the benchmark's reward). progress: 10 × the "
        "share of the task type's subgoals reached (object seen, taken, cleaned/heated/cooled, placed), read "
        "from the game's PDDL facts, paid as it first rises (RetroAgent arXiv:2603.08561, SPA-RL "
        "arXiv:2505.20732); a won game still totals 10 and success is still the won bit",
    )


class WebshopConfig(_Section):
    num_products: int = Field(2000, ge=50, description="generated catalogue size")
    num_test_goals: int = Field(500, ge=1, description="goals held out for the test split")
    max_steps: int = Field(15, ge=1, description="WebShop step limit")


class EnvConfig(_Section):
    name: str = Field("alfworld", description="alfworld | webshop | a user env registered with register_env")
    url: str | None = Field(None, description="use a remote env server (krill env serve) at this URL")
    token_env: str = Field("KRILL_ENV_TOKEN", description="env var holding the env server's token")
    workers: int = Field(0, ge=0, description="pool worker processes (0 = in-process)")
    pool_timeout: float = Field(
        120.0, gt=0, description="seconds per pool call; a slower worker is restarted"
    )
    seed: int = Field(0, description="seed for task order and generation")
    categories: list[str] = Field(default_factory=list, description="extra task categories of user envs")
    alfworld: AlfworldConfig = Field(default_factory=AlfworldConfig)
    webshop: WebshopConfig = Field(default_factory=WebshopConfig)


class AgentConfig(_Section):
    context: Literal["window", "conversation"] = Field(
        "window",
        description="window: every step is one prompt (skills, task, the last history_window steps, the "
        "observation), the paper's layout. conversation: the episode is one chat (first turn: skills, task, "
        "initial observation; then reply, observation, ...); a step prefills only its new turn and "
        "training scores a whole episode in one pass (history_window and action_memory are window-only)",
    )
    think: bool = Field(
        False, description="ask for <think>…</think> before <action>; off for tiny CPU models"
    )
    history_window: int = Field(3, ge=0, description="recent (observation, action) pairs in the prompt")
    action_memory: bool = Field(
        False, description="also list the actions taken before the history window (one line, no observations)"
    )
    restate_task: bool = Field(False, description="repeat the task in the last line, right before the answer")
    max_prompt_length: int = Field(
        6000,
        ge=32,
        description="tokens of every phase's prompt (collection, SFT demos, RL rollouts, evaluation); the oldest "
        "history is dropped first (formerly rl.max_prompt_length)",
    )
    use_skills: bool = Field(True, description="inject retrieved skills (False = ablation)")
    show_admissible: bool = Field(True, description="list admissible actions in the prompt")
    max_admissible: int = Field(40, ge=1, description="cap on listed admissible actions (prompt length)")
    constrain_actions: bool = Field(
        False,
        description="decode only admissible actions (local policy, bare actions): a small model cannot "
        "invent a receptacle that is not in the room; WebShop's search box is offered as queries written "
        "from the instruction's own words",
    )
    choice_score: Literal["sum", "mean"] = Field(
        "sum",
        description="constrain_actions: an action's score is the sum of its tokens' log-probs (+ end-of-turn), "
        "or their mean (TWOSOME's length normalisation, arXiv:2401.14151). The policy is the softmax of the "
        "scores over the admissible actions at the sampling temperature; GRPO trains exactly that",
    )


class RetrievalConfig(_Section):
    top_k: int = Field(6, ge=0, description="K task-specific skills (paper: 6)")
    threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="cosine δ a task skill must exceed; unset: the embedding model's calibrated δ "
        "(all-MiniLM-L6-v2: 0.04; see krill.skills.retrieval.CALIBRATED_THRESHOLDS), else the paper's 0.4",
    )
    mode: Literal["similarity", "template"] = Field(
        "similarity", description="template = all skills of the category"
    )
    max_mistakes: int = Field(5, ge=0, description="common mistakes shown per prompt")
    max_general: int | None = Field(
        None, ge=0, description="general skills shown (the closest to the task); None = all, as in the paper"
    )


class DistillConfig(_Section):
    merge_threshold: float = Field(0.9, ge=0, le=1, description="cosine at which two skills are merged")
    concurrency: int = Field(16, ge=1, description="concurrent teacher requests")
    trajectories_per_call: int = Field(4, ge=1, description="trajectories batched in one teacher prompt")
    max_observation_chars: int = Field(300, ge=20, description="observations are truncated with a marker")


class LoraConfig(_Section):
    enabled: bool = Field(True, description="LoRA (PEFT) adapter; False = full fine-tuning")
    r: int = Field(16, ge=1, description="adapter rank")
    alpha: int = Field(32, ge=1, description="scaling numerator: the update is (alpha / r) · BA")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter's input")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="linear layers that get an adapter (Llama/Qwen names: attention and MLP)",
    )


class SftConfig(_Section):
    learning_rate: float = Field(1e-4, gt=0, le=1, description="paper: 1e-4")
    batch_size: int = Field(16, ge=1, description="effective batch (paper: 16)")
    micro_batch_size: int = Field(
        4,
        ge=1,
        description="per forward pass; accumulation fills the batch. On CPU use 1: an unpadded row runs "
        "SDPA's flash kernel, a padded batch the math kernel that stores [b, heads, L, L] per layer",
    )
    epochs: float = Field(3, gt=0, le=1000, description="paper: 3")
    num_examples: int = Field(7500, ge=1, description="demo steps in the SFT set (original krill default)")
    max_length: int = Field(2048, ge=64, description="tokens per example (prompt + response)")
    checkpoint_every: int = Field(50, ge=1, description="optimizer steps between resumable checkpoints")
    seed: int = Field(
        0, description="demo order, and the adapter's initialisation (also RL's, when RL starts without SFT)"
    )


class RlConfig(_Section):
    learning_rate: float = Field(1e-6, gt=0, le=1, description="paper: 1e-6")
    batch_size: int = Field(
        64, ge=1, description="trajectories per iteration = tasks_per_iteration × group_size"
    )
    group_size: int = Field(8, ge=1, description="G rollouts per task (paper: 8)")
    kl_coef: float = Field(0.01, ge=0, description="β for the k3 KL to π_ref, the policy RL starts from")
    clip_ratio: float = Field(0.2, ge=0, description="ε_c of the clipped surrogate")
    invalid_action_penalty: float = Field(
        0.1, ge=0, description="subtracted from the return per invalid action"
    )
    iterations: int = Field(150, ge=1, description="RL iterations (paper: 150 epochs)")
    ppo_epochs: int = Field(1, ge=1, description="passes over each iteration's samples")
    micro_batch_tokens: int = Field(
        8192,
        ge=64,
        description="tokens per forward/backward; grads accumulate. On CPU, about one sample's length "
        "(unpadded rows: see sft.micro_batch_size)",
    )
    max_grad_norm: float = Field(1.0, gt=0, description="gradient norm clip per optimizer step")
    temperature: float = Field(1.0, gt=0, description="sampling temperature for rollouts")
    max_steps: int | None = Field(None, ge=1, description="episode step cap during RL (None = env default)")
    tasks: list[str] = Field(
        default_factory=list, description="train only on these task ids of the train split (empty = all)"
    )
    checkpoint_every: int = Field(1, ge=1, description="iterations between checkpoints")
    train_model: str | None = Field(
        None,
        description="local weights to train when rollouts use an OpenAI-compatible server (default: model.policy.model)",
    )
    adapter_sync_endpoint: str = Field(
        "/v1/load_lora_adapter",
        description="server path that loads a saved LoRA adapter (vLLM's) after each update",
    )
    seed: int = Field(0, description="task sampling and rollout sampling seeds")
    advantage: Literal["grpo", "gigpo"] = Field(
        "grpo",
        description="grpo: one advantage per episode (the paper); gigpo: + step-level credit from steps that "
        "share an anchor state (Feng et al. 2025, GiGPO)",
    )
    step_advantage_weight: float = Field(1.0, ge=0, description="GiGPO's ω in A = A_episode + ω·A_step")
    gamma: float = Field(0.95, ge=0, le=1, description="GiGPO: discount of the step-level returns")
    dynamic_sampling: bool = Field(
        False,
        description="DAPO's dynamic sampling: replace zero-variance groups (all won / all lost) by new tasks' "
        "groups until the batch is full",
    )
    max_resample_rounds: int = Field(
        3, ge=0, description="dynamic sampling: extra rollout rounds per iteration at most"
    )
    guidance: Literal["none", "prefix", "mixed"] = Field(
        "none",
        description="expert help for groups that rarely win. prefix: guided_rollouts of each group start after "
        "the first k steps of the env's expert (k = guide_fraction × its length, shrinking as guided rollouts win; "
        "BREAD arXiv:2506.17211, R3 arXiv:2402.05808); the expert's steps are context, never trained as the "
        "policy's. mixed: prefix, and a group whose rollouts all failed gets the expert's whole episode as an "
        "off-policy member, trained with LUFFY's shaped weight π/(π+γ) (arXiv:2504.14945)",
    )
    guided_rollouts: int = Field(
        2, ge=0, description="guidance: rollouts per group that start after an expert prefix (≤ group_size)"
    )
    guide_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="guidance: the expert prefix's share of the expert's episode at the start",
    )
    guide_decay: float = Field(
        0.1,
        ge=0,
        le=1,
        description="guidance: the prefix share drops by this after an iteration whose guided rollouts won ≥ half",
    )
    off_policy_gamma: float = Field(
        0.1, gt=0, description="mixed guidance: γ of LUFFY's shaping f(π) = π/(π+γ) for the expert's actions"
    )

    @model_validator(mode="after")
    def _whole_groups(self) -> RlConfig:
        if self.batch_size % self.group_size:
            raise ValueError(
                f"rl.batch_size ({self.batch_size}) must be a multiple of rl.group_size ({self.group_size}): "
                "an iteration runs batch_size / group_size tasks, G rollouts each"
            )
        return self


class EvolutionConfig(_Section):
    enabled: bool = Field(
        True, description="evolve the bank from validation failures during RL (False = ablation)"
    )
    validation_interval: int = Field(5, ge=1, description="RL iterations between validation + evolution")
    max_new_skills: int = Field(3, ge=0, description="per failing category per cycle")
    threshold: float = Field(0.4, ge=0, le=1, description="categories below this success rate evolve")
    deep: int = Field(10, ge=0, description="failures analysed in full")
    shallow: int = Field(5, ge=0, description="more failures summarised")
    validation_episodes: int = Field(24, ge=1, description="validation episodes per evaluation")
    dedup_threshold: float = Field(
        0.9, ge=0, le=1, description="new skills this close to an existing one are dropped"
    )


class SkillsConfig(_Section):
    curriculum: Literal["none", "linear", "success"] = Field(
        "none",
        description="withdraw skills during GRPO so the policy internalizes them (Skill0, arXiv 2604.02268): "
        "linear: shows the share 1 − (t+1)/T of each retrieved list at iteration t of T; success: a "
        "category's skills go once its rollout success reaches curriculum_threshold",
    )
    curriculum_threshold: float = Field(
        0.6, ge=0, le=1, description="skills.curriculum=success: rollout success that withdraws a category"
    )


class EvalConfig(_Section):
    split: str = Field(
        "valid_unseen",
        description="held-out split: valid_unseen (ALFWorld's out-of-distribution) | valid_seen | test",
    )
    episodes: int | None = Field(None, ge=1, description="None = the whole split")
    temperature: float = Field(0.0, ge=0, description="greedy by default")
    seed: int = Field(0, description="task sample and sampling seed")


class TrainConfig(_Section):
    expert_episodes: int = Field(200, ge=0, description="expert rollouts collected for distillation and SFT")
    policy_episodes: int = Field(
        200, ge=0, description="untrained-policy rollouts (failures feed distillation)"
    )
    eval_episodes: int = Field(60, ge=1, description="held-out episodes for the before/after table")
    policy_max_steps: int | None = Field(
        None, ge=1, description="step cap for the untrained-policy rollouts (None = the env's limit)"
    )
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="where SFT and RL log their curves besides metrics.jsonl, as TRL's report_to: "
        "tensorboard (RUN/…/tb), wandb (needs the wandb package; its key comes from WANDB_API_KEY)",
    )


class AblateConfig(_Section):
    rl_iterations: int | None = Field(
        None,
        ge=1,
        description="GRPO iterations of every RL variant of `krill ablate` (None = rl.iterations): the ablation "
        "can afford a longer RL phase than `krill train`'s budget, and its RL rows only separate if RL runs long enough",
    )


class KrillConfig(_Section):
    preset: str | None = Field(None, description="preset this config started from")
    seed: int = Field(0, description="seed of `krill train`'s collection phase")
    cache_dir: str = Field(
        default_factory=lambda: os.environ.get("KRILL_CACHE", str(Path.home() / ".cache" / "krill")),
        description="models converted from packages, generated games, embedding cache",
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    skill_retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    lora: LoraConfig = Field(
        default_factory=LoraConfig,
        description="the adapter SFT trains and RL goes on training (formerly sft.lora)",
    )
    sft: SftConfig = Field(default_factory=SftConfig)
    rl: RlConfig = Field(default_factory=RlConfig)
    evolution: EvolutionConfig = Field(default_factory=EvolutionConfig)
    skills: SkillsConfig = Field(default_factory=SkillsConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    ablate: AblateConfig = Field(default_factory=AblateConfig)

    def sampling(self, phase: Phase) -> Sampling:
        """How `phase` decodes: collect and eval read their own temperature, RL rollouts sample at
        `rl.temperature`, validation is greedy; every phase's replies stop at `model.policy.max_new_tokens`."""
        policy = self.model.policy
        temperature = {
            "collect": policy.temperature,
            "eval": self.eval.temperature,
            "validation": 0.0,
            "rollout": self.rl.temperature,
        }[phase]
        return Sampling(temperature, policy.top_p, policy.max_new_tokens)

    def override(self, changes: dict[str, Any]) -> KrillConfig:
        """A validated copy with dotted keys changed (`{"model.policy.backend": "openai"}`): configs
        are read-only once loaded, so a phase that needs other settings derives its own."""
        data = self.model_dump()
        for key, value in changes.items():
            data = deep_merge(data, apply_renames(_nest(key.split("."), value), "override"))
        return KrillConfig.model_validate(data)

    def to_public_dict(self) -> dict[str, Any]:
        """The config as written to disk/printed: it holds env var *names*, never key values, and
        URLs with their credentials masked (the running code keeps the real URL)."""
        return mask_urls(self.model_dump(mode="json"))


# ---------------------------------------------------------------------------------------------
def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = value
    for k in reversed(keys):
        out = {k: out}
    return out
