"""The policy's prompt: templates as module constants (verl-agent style) and two builders.

`agent.context: window` (`build_messages`, the paper's prompt): one system + one user message per
step. Layout chosen for prefix KV-cache reuse: everything that stays fixed within an episode comes
FIRST (system text, retrieved skills, task, initial observation); what changes every step comes
LAST (history window, current observation, admissible actions). Over-long prompts lose their
oldest history first (`agent.max_prompt_length`).

`agent.context: conversation` (`build_conversation`): the episode is one chat. The first user turn
holds the skills, the task and the initial observation; every step adds the agent's reply and a
user turn with the next observation. Over-long chats lose their oldest exchanges (the first turn
stays), down to 3/4 of `agent.max_prompt_length` so the next steps extend the cut chat again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from krill.config import KrillConfig
from krill.models.base import Messages
from krill.schema import SkillBank
from krill.skills.memory import MEMORY_HEADER
from krill.skills.retrieval import Retrieved

ENV_ROLES = {
    "alfworld": "You are an expert agent operating in the ALFRED embodied household environment.",
    "webshop": "You are an expert shopping agent navigating the WebShop website to buy what the user asks for.",
}
DEFAULT_ROLE = "You are an expert agent acting in a text environment."

THINK_FORMAT = (
    "At each step, first reason step by step about the situation inside <think> </think> tags, "
    "then give exactly one admissible action inside <action> </action> tags, e.g.\n"
    "<think>...</think><action>go to fridge 1</action>"
)
BARE_FORMAT = (
    "At each step, answer with exactly one admissible action on a single line and nothing else, "
    "e.g.\ngo to fridge 1"
)

SKILLS_HEADER = "## Retrieved Relevant Experience"
GENERAL_HEADER = "### General Principles"
CATEGORY_HEADER = "### {category} Skills"
MISTAKES_HEADER = "### Mistakes to Avoid"
SKILL_LINE = "- **{name}**: {principle} (when: {when_to_apply})"
MISTAKE_LINE = "- {description}{how}"

TASK_TEMPLATE = "## Task\nYour task is to: {task}"
INITIAL_TEMPLATE = "## Initial Observation\n{observation}"
EARLIER_TEMPLATE = "## Earlier Actions (steps 1-{n})\n{actions}"
HISTORY_HEADER = "## Recent History (you have taken {n} step(s) so far; last {k} shown)"
HISTORY_ITEM = "[Step {i}] Observation: {observation}\nAction: {action}"
CURRENT_TEMPLATE = "## Current Observation (step {step})\n{observation}"
ADMISSIBLE_TEMPLATE = "## Admissible Actions\n{actions}"
RESTATE_TEMPLATE = "Your task is to: {task}."
REMINDER_THINK = "Now reason inside <think> </think>, then give your action inside <action> </action>."
# Ends with a question: SmolLM2-135M echoes a trailing "Your next action:" line instead of answering.
# ("The best next action is ..." primes an answer such as "The best next action is to go to cabinet 1.")
REMINDER_BARE = "The best next action is one of the admissible actions. Which one?"


def default_count_tokens(text: str) -> int:
    """Rough token count (~4 characters per token) when no tokenizer is at hand."""
    return len(text) // 4


@dataclass
class PromptState:
    """What the prompt builder needs about one live episode."""

    task: str
    observation: str
    admissible: Sequence[str] = ()
    history: Sequence[tuple[str, str]] = ()  # (observation seen, action taken), oldest first
    step: int = 0
    env_name: str = "alfworld"
    initial_observation: str | None = None


@dataclass
class Turn:
    """One observation of a conversation-mode episode and the agent's reply to it (None: not yet)."""

    observation: str
    admissible: Sequence[str] = ()
    reply: str | None = None


def skills_section(retrieved: Retrieved | None) -> str:
    """`## Retrieved Relevant Experience` with general, category and mistake subsections ('' if empty);
    `## Similar Past Trajectories` for a raw-trajectory memory."""
    if retrieved is None or (not len(retrieved) and not retrieved.mistakes):
        return ""
    if retrieved.memories:  # the raw-trajectory baseline: trajectories where the skills would be
        return "\n\n".join([MEMORY_HEADER, *(text for text, _ in retrieved.memories)])
    parts = [SKILLS_HEADER]
    if retrieved.general:
        parts.append(GENERAL_HEADER)
        parts.extend(_skill_line(s) for s in retrieved.general)
    if retrieved.specific:
        parts.append(CATEGORY_HEADER.format(category=_category_title(retrieved)))
        parts.extend(_skill_line(s) for s, _ in retrieved.specific)
    if retrieved.mistakes:
        parts.append(MISTAKES_HEADER)
        for m in retrieved.mistakes:
            how = f" Avoid it: {m.how_to_avoid}" if m.how_to_avoid else ""
            parts.append(MISTAKE_LINE.format(description=m.description.strip(), how=how))
    return "\n".join(parts)


def build_messages(
    state: PromptState,
    cfg: KrillConfig,
    retrieved: Retrieved | None = None,
    *,
    count_tokens: Callable[[str], int] | None = None,
) -> Messages:
    """System + user chat messages for one step, capped at `agent.max_prompt_length` tokens.

    `retrieved` is what the prompt shows of the bank (None: no skills; whether skills are shown is
    decided once, by `make_retriever` below). History beyond `agent.history_window`
    is not shown; if the prompt is still too long, the oldest shown entries are dropped first.
    """
    count = count_tokens or default_count_tokens
    acfg = cfg.agent
    system = "\n\n".join(
        [ENV_ROLES.get(state.env_name, DEFAULT_ROLE), THINK_FORMAT if acfg.think else BARE_FORMAT]
    )
    fixed = _fixed_part(state, retrieved)
    window = list(state.history)[-acfg.history_window :] if acfg.history_window else []
    first_index = len(state.history) - len(window)
    while True:
        user = "\n\n".join([fixed, _changing_part(state, window, first_index, cfg)])
        if not window or count(system) + count(user) <= cfg.agent.max_prompt_length:
            break
        window, first_index = window[1:], first_index + 1  # drop the oldest history entry
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def build_conversation(
    task: str,
    turns: Sequence[Turn],
    cfg: KrillConfig,
    retrieved: Retrieved | None = None,
    *,
    env_name: str = "alfworld",
    first: int = 0,
) -> Messages:
    """The episode as one chat: system, first user turn (skills, task, initial observation), then per
    step the reply and the next observation. Exchanges 1..`first` are left out (see `fit_conversation`)."""
    acfg = cfg.agent
    system = "\n\n".join([ENV_ROLES.get(env_name, DEFAULT_ROLE), THINK_FORMAT if acfg.think else BARE_FORMAT])
    head = [skills_section(retrieved), TASK_TEMPLATE.format(task=task.strip())]
    messages = [{"role": "system", "content": system}]
    messages.append(
        {"role": "user", "content": "\n\n".join([*filter(None, head), _turn_text(turns[0], task, cfg)])}
    )
    for k in range(max(1, first + 1), len(turns)):
        messages.append({"role": "assistant", "content": (turns[k - 1].reply or "").strip()})
        messages.append({"role": "user", "content": _turn_text(turns[k], task, cfg)})
    return messages


def fit_conversation(turns: Sequence[Turn], first: int, limit: int, count: Callable[[str], int]) -> int:
    """The `first` exchange to show: unchanged while the chat fits `limit` tokens, else the oldest are
    dropped until it fits 3/4 of it (one rebuild, then several steps that extend it again)."""

    per_turn = [count(t.observation) + count(t.reply or "") + 8 for t in turns]  # 8: template tokens

    def size(k: int) -> int:
        return per_turn[0] + sum(per_turn[k + 1 :])

    if size(first) <= limit:
        return first
    while first < len(turns) - 1 and size(first) > limit * 3 // 4:
        first += 1
    return first


def _turn_text(turn: Turn, task: str, cfg: KrillConfig) -> str:
    """A conversation user turn: the observation, the admissible actions (if shown) and the question."""
    parts = [turn.observation.strip()]
    if cfg.agent.show_admissible and turn.admissible:
        shown = cap_admissible(turn.admissible, cfg.agent.max_admissible)
        more = len(turn.admissible) - len(shown)
        text = "\n".join(f"- {a}" for a in shown) + (f"\n(... {more} more)" if more > 0 else "")
        parts.append(ADMISSIBLE_TEMPLATE.format(actions=text))
    parts.append(_reminder(task, cfg))
    return "\n\n".join(p for p in parts if p)


def _reminder(task: str, cfg: KrillConfig) -> str:
    reminder = REMINDER_THINK if cfg.agent.think else REMINDER_BARE
    if cfg.agent.context == "conversation" and cfg.agent.constrain_actions and not cfg.agent.show_admissible:
        reminder = ""  # the decoder picks an admissible action itself; asking for one from a list not shown says nothing
    if cfg.agent.restate_task:
        # a small model copies the object name from nearby text: the task sits ~1,000 tokens up
        reminder = f"{RESTATE_TEMPLATE.format(task=task.strip().rstrip('.'))} {reminder}".strip()
    return reminder


def _fixed_part(state: PromptState, retrieved: Retrieved | None) -> str:
    parts = [skills_section(retrieved), TASK_TEMPLATE.format(task=state.task.strip())]
    if state.initial_observation:
        parts.append(INITIAL_TEMPLATE.format(observation=state.initial_observation.strip()))
    return "\n\n".join(p for p in parts if p)


def _changing_part(state: PromptState, window: list[tuple[str, str]], first: int, cfg: KrillConfig) -> str:
    parts = []
    if cfg.agent.action_memory and first > 0:
        # a few tokens per step: where the agent has been, which the short window forgets
        earlier = "; ".join(act for _, act in list(state.history)[:first])
        parts.append(EARLIER_TEMPLATE.format(n=first, actions=earlier))
    if window:
        lines = [HISTORY_HEADER.format(n=len(state.history), k=len(window))]
        for j, (obs, act) in enumerate(window):
            # The initial observation is already in the fixed part: do not pay its tokens twice.
            seen = "(the initial observation)" if obs == state.initial_observation else _squash(obs)
            lines.append(HISTORY_ITEM.format(i=first + j + 1, observation=seen, action=act))
        parts.append("\n".join(lines))
    parts.append(CURRENT_TEMPLATE.format(step=state.step + 1, observation=state.observation.strip()))
    parts.append(_turn_text(Turn("", state.admissible), state.task, cfg))
    return "\n\n".join(p for p in parts if p)


def cap_admissible(actions: Sequence[str], cap: int) -> list[str]:
    """At most `cap` actions, in their given order; when some must go, the most common kind goes.

    Kinds are first words. ALFWorld lists ~35 `go to …` next to the few actions on what is at hand
    (`take apple 1 from countertop 1`, `open fridge 1`), and alphabetically those come last: a plain
    head-of-list cut would hide exactly the actions a task needs. The places left out of the list are
    still named in the observation.
    """
    actions = list(actions)
    if len(actions) <= cap:
        return actions
    kinds = [a.split(" ", 1)[0] for a in actions]
    kind_count = Counter(kinds)
    ranked = sorted(range(len(actions)), key=lambda i: kind_count[kinds[i]])
    keep = set(ranked[:cap])  # sorted() is stable: within a kind, the first ones listed stay
    return [a for i, a in enumerate(actions) if i in keep]


def _skill_line(s) -> str:
    return SKILL_LINE.format(
        name=s.name.strip(), principle=s.principle.strip().rstrip("."), when_to_apply=s.when_to_apply.strip()
    )


def _category_title(retrieved: Retrieved) -> str:
    if retrieved.category:
        return retrieved.category
    cats = sorted({s.category for s, _ in retrieved.specific})
    return cats[0] if len(cats) == 1 else "Task-Specific"


def _squash(text: str) -> str:
    return " ".join(text.split())


def shows_skills(cfg: KrillConfig, bank: Any = None, retriever: Any = None, wanted: bool = True) -> bool:
    """The one rule for whether prompts show skills, in every phase (collection, SFT demos, RL
    rollouts, evaluation, validation): `agent.use_skills` is on, the caller wants them (an ablation's
    `--no-skills` does not), and there is a `bank` or a ready `retriever` (the raw-trajectory memory)."""
    return wanted and cfg.agent.use_skills and (bank is not None or retriever is not None)


def make_retriever(
    bank: SkillBank | None,
    cfg: KrillConfig,
    *,
    retriever: Any = None,
    wanted: bool = True,
    embedder: Any = None,
) -> Any:
    """The retriever prompts draw skills from (`retriever` when given, else one over `bank`, with
    `embedder` or the config's), or None when `shows_skills` says the prompts show none."""
    if not shows_skills(cfg, bank, retriever, wanted):
        return None
    from krill.skills.retrieval import build_retriever

    return retriever or build_retriever(bank, cfg, embedder)
