"""Actors choose one action for each live episode of a batch: the LLM policy, the env's expert, random.

Every actor has `name` and `act(episodes, pool) -> list[Decision]`. The LLM actor makes ONE batched
`policy.generate` call per step for all live episodes (that is where batching pays: decode is
memory-bound). Actors never touch env state except through the pool (the expert asks it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from krill.agent.parsing import TEMPLATE_SUFFIX, parse_action
from krill.agent.prompts import (
    PromptState,
    Turn,
    build_conversation,
    build_messages,
    default_count_tokens,
    fit_conversation,
)
from krill.errors import KrillError

if TYPE_CHECKING:
    from krill.agent.rollout import Episode
    from krill.config import KrillConfig, Sampling
    from krill.envs.base import Pool
    from krill.models.base import Policy
    from krill.schema import SkillBank
    from krill.skills.retrieval import Retriever


@dataclass
class Decision:
    """The action to send to the env and what to record about it."""

    action: str
    valid: bool = True
    think: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0


class Actor(Protocol):
    name: str

    def act(self, episodes: list[Episode], pool: Pool) -> list[Decision]: ...


class LLMActor:
    """A policy prompted with the task, history, admissible actions and retrieved skills.

    `sampling` comes from the phase that runs the actor (`cfg.sampling("eval")`, `"rollout"`, ...;
    default `"collect"`): G copies of one task in a batch sampled at `rl.temperature` are independent
    samples (GRPO groups). Prompts show skills exactly when there is a `retriever` (built by
    `krill.agent.prompts.make_retriever`, the one rule for it).
    `guides` (RL's `rl.guidance`): episode index → expert actions played before the policy acts; they
    are recorded in the chat exactly as the policy's own replies would be, with `guided: True`.
    """

    def __init__(
        self,
        policy: Policy,
        retriever: Retriever | None,
        cfg: KrillConfig,
        sampling: Sampling | None = None,
        want_logprobs: bool = False,
        seed: int = 0,
        guides: dict[int, list[str]] | None = None,
    ):
        self.policy, self.retriever, self.cfg = policy, retriever, cfg
        self.sampling = sampling or cfg.sampling("collect")
        self.want_logprobs, self.seed = want_logprobs, seed
        self.guides = guides or {}
        self.name = getattr(policy, "name", type(policy).__name__)
        self.count_tokens = getattr(policy, "count_tokens", None) or _tokenizer_counter(policy)
        self._calls = 0
        # conversation mode on a local policy: prompts as appended token ids (exact, prefill-only-new)
        self.chat = None
        if cfg.agent.context == "conversation" and getattr(policy, "supports_prompt_ids", False):
            from krill.models.chat_tokens import ChatTokens

            self.chat = ChatTokens(policy.tokenizer)

    def prompt_for(self, ep: Episode) -> list[dict[str, str]]:
        """The chat messages for this episode's current step (retrieval done once per episode)."""
        if self.retriever is not None and ep.retrieved is None:
            ep.retrieved = self.retriever.retrieve(ep.task, ep.category)
        if self.cfg.agent.context == "conversation":
            turns = ep.turns or [Turn(ep.observation, ep.admissible)]
            count = self.count_tokens or default_count_tokens
            first = fit_conversation(
                turns, ep.scratch.get("first", 0), self.cfg.agent.max_prompt_length, count
            )
            ep.scratch["first"] = first
            return build_conversation(ep.task, turns, self.cfg, ep.retrieved,
                                      env_name=ep.env_name, first=first)  # fmt: skip
        state = PromptState(
            task=ep.task,
            observation=ep.observation,
            admissible=ep.admissible,
            history=ep.history,
            step=len(ep.steps),
            env_name=ep.env_name,
            initial_observation=ep.initial_observation,
        )
        return build_messages(state, self.cfg, ep.retrieved, count_tokens=self.count_tokens)

    def act(self, episodes: list[Episode], pool: Pool) -> list[Decision]:
        batch = [self.prompt_for(ep) for ep in episodes]
        constrain = self.cfg.agent.constrain_actions
        if constrain:  # checked here, where decoding happens (prompt_for needs no policy)
            _check_constrainable(self.policy, self.cfg)
        choices = [_choices(ep) for ep in episodes] if constrain else [None] * len(episodes)
        contexts: list[Any] = [None] * len(episodes)
        if self.chat is not None:
            contexts = [self._context(ep, msgs) for ep, msgs in zip(episodes, batch, strict=True)]
        gens = {i: self._guided(ep, batch[i], choices[i]) for i, ep in enumerate(episodes) if self._guide(ep)}
        todo = [i for i in range(len(episodes)) if i not in gens]
        if todo:
            gens.update(zip(todo, self._generate(episodes, batch, choices, todo), strict=True))
        return [
            self._decide(ep, batch[i], gens[i], contexts[i], choices[i] if self.want_logprobs else None)
            for i, ep in enumerate(episodes)
        ]

    def _generate(self, episodes: list[Episode], batch, choices, todo: list[int]) -> list[Any]:
        """One batched `policy.generate` for the rows the policy answers."""
        temperature = self.sampling.temperature
        extra: dict[str, Any] = {}
        if self.cfg.agent.constrain_actions:
            extra["choices"] = [choices[i] for i in todo]
        if self.chat is not None:
            extra["prompt_ids"] = [episodes[i].scratch["chat_ids"] for i in todo]
        self._calls += 1
        return self.policy.generate(
            [batch[i] for i in todo],
            max_new_tokens=self.sampling.max_new_tokens,
            temperature=temperature,
            top_p=self.sampling.top_p,
            want_logprobs=self.want_logprobs,
            # A bare action is one line: stopping at the newline saves decode steps (leading
            # whitespace never stops a row, see krill.models.decoding.find_stop).
            stop=["</action>"] if self.cfg.agent.think else ["</action>", "\n"],
            seed=self.seed * 100_003 + self._calls if temperature > 0 else None,
            **extra,
        )

    def _guide(self, ep: Episode) -> str | None:
        """The expert action this episode plays at this step, while its guide lasts."""
        guide = self.guides.get(ep.index) or []
        return guide[len(ep.steps)] if len(ep.steps) < len(guide) else None

    def _guided(self, ep: Episode, messages, choices: list[str] | None) -> Any:
        """The expert's action as the policy would have written it: the same reply ids a choice
        decoder produces for it (its tokens, then end-of-turn), so the chat goes on exactly."""
        from krill.models.base import Generation

        action = self._guide(ep) or ""
        tok = self.policy.tokenizer
        ids = [*tok(action, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        template = getattr(self.policy, "prompt_text", None)
        prompt_text = template(messages) if callable(template) else _flatten(messages)
        index = choices.index(action) if choices and action in choices else None
        return Generation(text=action, prompt_tokens=0, response_tokens=len(ids), prompt_text=prompt_text,
                          token_ids=ids, choice_index=index)  # fmt: skip

    def _context(self, ep: Episode, messages) -> tuple[list[int], bool]:
        """This step's context as appended ids: (the ids new since the last step, whether rebuilt).

        The full ids land in `ep.scratch["chat_ids"]`. Appending keeps the previous context and the
        reply exactly as sampled, so the decoder's prefix cache reuses it all; a first step, or a chat
        that `fit_conversation` just cut, is templated afresh."""
        previous = ep.scratch.get("chat_ids")
        if previous is None or ep.scratch.get("chat_first") != ep.scratch["first"] or not ep.steps:
            ids = self.chat.start(messages)
            ep.scratch["chat_ids"], ep.scratch["chat_first"] = ids, ep.scratch["first"]
            return ids, True
        reply = list((ep.steps[-1].model_extra or {}).get("response_token_ids") or [])
        new = self.chat.after_reply(reply, messages[-1]["content"])
        ep.scratch["chat_ids"] = [*previous, *reply, *new]
        return new, False

    def _decide(self, ep: Episode, messages, gen, context=None, choices: list[str] | None = None) -> Decision:
        skills = ep.retrieved.skill_ids() if ep.retrieved is not None else []
        if context is not None:  # conversation: this step's new ids, not the (growing) whole prompt
            where = {"context_ids": list(context[0]), "context_reset": context[1]}
        else:
            where = {"prompt_text": gen.prompt_text if gen.prompt_text is not None else _flatten(messages)}
        extras: dict[str, Any] = {
            **where,
            "response": gen.text,
            "response_token_ids": list(gen.token_ids),
            "prompt_tokens": gen.prompt_tokens,
            "response_tokens": gen.response_tokens,
            "skills_used": skills,
        }
        if self.want_logprobs:
            extras["response_logprobs"] = list(gen.logprobs) if gen.logprobs is not None else None
        if choices is not None and gen.choice_index is not None:  # what GRPO's choice policy re-scores
            extras.update(choices=list(choices), choice_index=gen.choice_index,
                          choice_logprob=gen.choice_logprob)  # fmt: skip
        if self._guide(ep) is not None:
            extras["guided"] = True
        tokens = gen.prompt_tokens + gen.response_tokens
        if gen.error:
            extras["error"] = gen.error
            return Decision("", False, None, extras, tokens)
        parsed = parse_action(gen.text, ep.admissible, think_required=self.cfg.agent.think)
        if not parsed.valid:
            extras["invalid_reason"] = parsed.reason
        return Decision(parsed.action, parsed.valid, parsed.think, extras, tokens)


class ExpertActor:
    """The environment's own expert (ALFWorld's planner walkthrough, WebShop's goal-driven shopper)."""

    name = "expert"

    def act(self, episodes: list[Episode], pool: Pool) -> list[Decision]:
        actions = pool.expert_actions([ep.slot for ep in episodes])
        return [Decision(a, True) if a else Decision("", False, extras={"invalid_reason": "no expert action"})
                for a in actions]  # fmt: skip


class RandomActor:
    """Uniform over admissible actions; a search page gets random words from the instruction."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def act(self, episodes: list[Episode], pool: Pool) -> list[Decision]:
        return [Decision(self._choose(ep)) for ep in episodes]

    def _choose(self, ep: Episode) -> str:
        # Per-episode generator: the same episode makes the same choices batched or alone.
        rng = ep.scratch.setdefault("rng", random.Random(f"{self.seed}:{ep.index}"))
        if not ep.admissible:
            return "look"
        choice = rng.choice(list(ep.admissible))
        if choice.endswith(TEMPLATE_SUFFIX):
            words = [w.strip(",.;:") for w in ep.task.split() if len(w) > 2]
            k = min(len(words), rng.randint(2, 5))
            return f"{choice[: -len(TEMPLATE_SUFFIX)]}[{' '.join(rng.sample(words, k)) if k else 'item'}]"
        return choice


ACTOR_KINDS = ("expert", "random", "local", "openai")


def make_actor(
    kind: str,
    cfg: KrillConfig,
    *,
    bank: SkillBank | None = None,
    sampling: Sampling | None = None,
    seed: int = 0,
    use_skills: bool = True,
    retriever: Retriever | None = None,
) -> Actor:
    """The actor for `kind`: the env's expert, random, or the LLM policy (`local` weights or an
    `openai`-compatible server) retrieving from `bank` (or from a ready `retriever`, e.g. the
    raw-trajectory memory); `cfg` is not changed."""
    if kind == "expert":
        return ExpertActor()
    if kind == "random":
        return RandomActor(seed)
    if kind not in ACTOR_KINDS:
        raise KrillError(f"unknown policy {kind!r}; choose one of {', '.join(ACTOR_KINDS)}", where="--policy")
    from krill.agent.prompts import make_retriever
    from krill.models import build_policy

    backend = "local" if kind == "local" else "openai"
    if backend == "openai" and cfg.agent.constrain_actions and cfg.model.policy.guided_choice == "none":
        # a preset's setting (quick turns it on for the local policy): a served policy answers freely
        # unless the user said how its server constrains (vLLM's guided choice, or a JSON-schema enum)
        import logging

        logging.getLogger(__name__).warning(
            "agent.constrain_actions is off for the served policy; to keep it, set "
            "model.policy.guided_choice: vllm (vLLM servers) or json_schema (OpenAI structured outputs)"
        )
        cfg = cfg.override({"agent.constrain_actions": False})
    pcfg = cfg if cfg.model.policy.backend == backend else cfg.override({"model.policy.backend": backend})
    retriever = make_retriever(bank, cfg, retriever=retriever, wanted=use_skills)
    return LLMActor(build_policy(pcfg), retriever, cfg, sampling, seed=seed)


def _check_constrainable(policy: Any, cfg: KrillConfig) -> None:
    if cfg.agent.think:
        raise KrillError("agent.constrain_actions: needs bare actions (agent.think: false)")
    if not getattr(policy, "supports_choices", False):
        raise KrillError(
            f"agent.constrain_actions: policy {getattr(policy, 'name', '?')!r} cannot constrain its "
            "decoding; set agent.constrain_actions: false, or for a served policy model.policy.guided_choice"
        )


def _choices(ep: Episode) -> list[str] | None:
    """The answers an episode's step may take. A free-text template (WebShop's `search[...]`) is
    offered as a few queries written from the task's own words (`search_queries`), so a constrained
    policy searches too; a page with no fixed answers at all decodes freely (None)."""
    if not ep.admissible:
        return None
    fixed = [a for a in ep.admissible if not a.endswith(TEMPLATE_SUFFIX)]
    if len(fixed) == len(ep.admissible):
        return fixed
    from krill.envs.webshop.queries import search_queries  # WebShop's only: not loaded for ALFWorld

    filled = [
        f"{a[: -len(TEMPLATE_SUFFIX)]}[{q}]"
        for a in ep.admissible
        if a.endswith(TEMPLATE_SUFFIX)
        for q in search_queries(ep.task)
    ]
    return (filled + fixed) or None


def _tokenizer_counter(policy: Any):
    """Exact prompt-length counting with the policy's own tokenizer, when it has one."""
    tok = getattr(policy, "tokenizer", None)
    if tok is None or not callable(tok):
        return None
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def _flatten(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
