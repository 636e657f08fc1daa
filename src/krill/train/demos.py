"""Skill-augmented SFT demonstrations: the prompt the agent would see + a target that cites the skills.

Two sources:
- `"expert"`: expert rollouts of the env's train tasks through the real rollout engine. At every step
  the prompt is built by `LLMActor.prompt_for` — the very code the LLM agent runs — from the same
  episode state (history, admissible actions, retrieved skills), and the expert's action is taken.
- a list of successful `Trajectory`s (e.g. converted ETO data): prompts rebuilt step by step with the
  agent's prompt builder (admissible actions only when the trajectory recorded them).

Targets: `<think>…</think><action>a</action>` when `agent.think` is on, the bare action otherwise.
With `agent.context: conversation` a demo is a whole episode, one chat whose assistant turns are
the targets (`episode_demos`); `sft.num_examples` still counts steps, in whole episodes.
The reasoning comes from a teacher: "analytic" composes it from the retrieved skills that fit the
expert's next action; an LLM teacher (`complete_json`) is asked for it. Demos are saved as chat
messages JSONL (`{"messages": [...]}`), loadable with `datasets.load_dataset("json", data_files=...)`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from krill.agent.prompts import make_retriever
from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import MAX_TRAJECTORY_BYTES, read_jsonl, write_jsonl
from krill.progress import progress_bar
from krill.schema import SkillBank, Trajectory

if TYPE_CHECKING:
    from krill.agent.actors import Decision
    from krill.agent.rollout import Episode
    from krill.envs.base import Pool

TEACHER_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}},
    "required": ["reasoning"],
}
TEACHER_PROMPT = (
    "You write the short reasoning an expert agent thinks before acting. Given the agent's prompt "
    "(task, observations, retrieved skills) and the action the expert takes next, explain in 1-3 "
    "sentences why that action is right, citing by name the retrieved skills that apply. "
    'Answer JSON: {{"reasoning": "..."}}.\n\n# Agent prompt\n{prompt}\n\n# Expert action\n{action}'
)
_WORD = re.compile(r"[a-z]+")
_STOP = {"a", "an", "the", "to", "in", "on", "of", "from", "with", "and", "or", "it", "is", "at", "for"}


# -- retrieval / prompts ---------------------------------------------------------------------------
class _PromptOnly:
    """Stands in for the policy inside `LLMActor` when only its prompt builder is wanted."""

    name = "prompt-builder"

    def __init__(self, count_tokens: Any = None):
        if count_tokens is not None:
            self.count_tokens = count_tokens


class DemoActor:
    """Acts like the expert; records, per step, the messages the LLM agent would have been given."""

    name = "expert"

    def __init__(self, retriever: Any, cfg: KrillConfig, count_tokens: Any = None):
        from krill.agent.actors import ExpertActor, LLMActor

        self.prompter = LLMActor(_PromptOnly(count_tokens), retriever, cfg)
        self.expert = ExpertActor()

    def act(self, episodes: list[Episode], pool: Pool) -> list[Decision]:
        prompts = [self.prompter.prompt_for(ep) for ep in episodes]
        decisions = self.expert.act(episodes, pool)
        for ep, msgs, dec in zip(episodes, prompts, decisions, strict=True):
            dec.extras["prompt_messages"] = msgs
            dec.extras["retrieved_skills"] = _skill_cards(ep.retrieved)
        return decisions


@dataclass
class DemoItem:
    """One step a demo is made of: the prompt the agent saw (built by the actor's own prompt code),
    the action to learn, the skills that prompt carried, and where it came from."""

    messages: list[dict[str, str]]
    action: str
    skills: list[dict[str, str]]
    task: str
    category: str | None
    step: int
    source: str
    episode: str


def _skill_cards(retrieved: Any) -> list[dict[str, str]]:
    if retrieved is None:
        return []
    cards = [
        {"name": s.name, "principle": s.principle, "when": s.when_to_apply, "tier": "general"}
        for s in retrieved.general
    ]
    cards += [
        {"name": s.name, "principle": s.principle, "when": s.when_to_apply, "tier": "task"}
        for s, _ in retrieved.specific
    ]
    return cards


# -- targets ---------------------------------------------------------------------------------------
def analytic_reasoning(task: str, action: str, skills: list[dict[str, str]]) -> str:
    """Reasoning composed from the retrieved skills that best fit the next action (word overlap)."""
    words = set(_WORD.findall(action.lower())) - _STOP
    # most word overlap with the action first; ties go to task-specific skills (already ranked by
    # similarity to the task), so with no overlap the best task skill is cited, not an arbitrary one
    ranked = sorted(
        skills,
        key=lambda s: (
            -len(words & set(_WORD.findall(f"{s['name']} {s['principle']} {s['when']}".lower()))),
            s.get("tier") != "task",
        ),
    )
    cited = [s for s in ranked[:2] if words & set(_WORD.findall(f"{s['name']} {s['principle']}".lower()))]
    cited = cited or ranked[:1]
    parts = [f"My task is to {task.strip().rstrip('.')}."]
    for s in cited:
        parts.append(f'The skill "{s["name"]}" applies: {s["principle"].strip().rstrip(".")}.')
    parts.append(f"So the next step is to {action}.")
    return " ".join(parts)


def format_target(action: str, reasoning: str | None, think: bool) -> str:
    """`<think>r</think><action>a</action>` (think on) or the bare action line (think off)."""
    if not think:
        return action
    return f"<think>{reasoning or ''}</think><action>{action}</action>"


def _llm_reasonings(teacher: Any, items: list[DemoItem]) -> list[str | None]:
    prompts = [
        [
            {
                "role": "user",
                "content": TEACHER_PROMPT.format(prompt=_step_prompt(it.messages), action=it.action),
            }
        ]
        for it in items
    ]
    answers = teacher.complete_json(prompts, schema=TEACHER_SCHEMA)
    return [a.get("reasoning") if isinstance(a, dict) else None for a in answers]


def _step_prompt(messages: list[dict[str, str]]) -> str:
    """The step's prompt for the teacher: the user message (window), or the chat's first turn (skills,
    task) and its current one (conversation)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if len(users) == 1 else f"{users[0]}\n\n...\n\n{users[-1]}"


def _reasoning_client(cfg: KrillConfig, teacher: Any) -> Any:
    """Who writes think-mode reasonings: a given object with `complete_json`, or the LLM teacher's
    client (`make_teacher`, the one teacher factory) when `teacher` or `model.teacher.backend` is llm;
    None = analytic reasonings."""
    from krill.skills.teachers import make_teacher

    if teacher is not None and teacher not in ("analytic", "llm"):
        return teacher
    if teacher == "llm" or (teacher is None and cfg.model.teacher.backend == "llm"):
        return make_teacher(cfg, kind="llm").client
    return None


def finish_demos(items: list[DemoItem], cfg: KrillConfig, teacher: Any) -> list[dict[str, Any]]:
    """Turn (messages, action, skills) items into chat demos with the teacher's targets."""
    llm = _reasoning_client(cfg, teacher) if cfg.agent.think else None
    reasons = _llm_reasonings(llm, items) if llm is not None and items else [None] * len(items)
    out = []
    for it, r in zip(items, reasons, strict=True):
        if cfg.agent.think and r is None:  # analytic teacher, or the LLM gave nothing usable
            r = analytic_reasoning(it.task, it.action, it.skills)
        target = format_target(it.action, r, cfg.agent.think)
        meta = {"task": it.task, "category": it.category, "step": it.step, "source": it.source}
        out.append({"messages": [*it.messages, {"role": "assistant", "content": target}], "meta": meta})
    return episode_demos(out, items) if cfg.agent.context == "conversation" else out


def episode_demos(steps: list[dict[str, Any]], items: list[DemoItem]) -> list[dict[str, Any]]:
    """Conversation mode: each episode's step demos become one chat, its first prompt then, per step,
    the target and the next user turn (an episode whose steps have a gap is cut at the gap)."""
    out: list[dict[str, Any]] = []
    for k, (demo, it) in enumerate(zip(steps, items, strict=True)):
        same = k > 0 and it.episode == items[k - 1].episode and out
        if same and out[-1]["meta"]["steps"] == it.step:
            out[-1]["messages"] += [demo["messages"][-2], demo["messages"][-1]]  # user turn, target
            out[-1]["meta"]["steps"] += 1
        elif not same and it.step == 0:
            out.append({"messages": [*demo["messages"][:2], demo["messages"][-1]],
                        "meta": {**demo["meta"], "step": 0, "steps": 1}})  # fmt: skip
    return out


def whole_episodes(items: list[DemoItem], n: int) -> list[DemoItem]:
    """The items of the first episodes, up to the one that brings the step count to `n`."""
    out: list[DemoItem] = []
    for k, it in enumerate(items):
        if len(out) >= n and it.episode != items[k - 1].episode:
            break
        out.append(it)
    return out


# -- sources ---------------------------------------------------------------------------------------
def expert_items(bank: SkillBank | None, cfg: KrillConfig, n: int, *, split: str = "train") -> list[DemoItem]:
    """Steps of successful expert episodes on seeded train tasks, until `n` steps are collected."""
    from krill.agent.rollout import run_episodes
    from krill.envs.pool import make_pool

    pool = make_pool(cfg, split, max(1, min(cfg.model.policy.batch_size, 16)))
    try:
        tasks = list(pool.task_ids())
        if not tasks:
            raise KrillError(f"the {cfg.env.name} {split} split has no tasks")
        random.Random(cfg.sft.seed).shuffle(tasks)
        actor = DemoActor(make_retriever(bank, cfg), cfg)
        items: list[DemoItem] = []
        chunk = max(1, min(len(tasks), len(pool)))
        with progress_bar("expert demos", n) as bar:
            for lo in range(0, len(tasks), chunk):
                trajs = run_episodes(actor, pool, tasks[lo : lo + chunk], seed=cfg.sft.seed, split=split)
                for t in trajs:
                    new = _items_of(t, "expert")
                    items.extend(new)
                    bar.advance(min(len(new), max(0, n - len(items) + len(new))))
                if len(items) >= n:
                    break
    finally:
        pool.close()
    return whole_episodes(items, n) if cfg.agent.context == "conversation" else items[:n]


def _items_of(t: Trajectory, source: str) -> list[DemoItem]:
    if not t.success:
        return []
    out = []
    for s in t.steps:
        extra = s.model_extra or {}
        if not s.valid or "prompt_messages" not in extra:
            continue
        out.append(DemoItem(extra["prompt_messages"], s.action, extra.get("retrieved_skills", []), t.task_description,
                            t.task_category, s.step_index, source, t.id))  # fmt: skip
    return out


def trajectory_items(
    trajs: list[Trajectory], bank: SkillBank | None, cfg: KrillConfig, n: int
) -> list[DemoItem]:
    """Prompts for given successful trajectories (e.g. converted ETO data), replayed step by step
    through the agent's own prompt builder (`LLMActor.prompt_for`: retrieval, conversation fitting),
    so a demo shows exactly what the agent would have been shown."""
    from krill.agent.prompts import Turn
    from krill.agent.rollout import Episode

    prompter = DemoActor(make_retriever(bank, cfg), cfg).prompter
    items: list[DemoItem] = []
    for t in trajs:
        if not t.success or not t.steps:
            continue
        ep = Episode(index=0, task_id=t.id, slot=0, task=t.task_description, category=t.task_category,
                     initial_observation=t.steps[0].observation, env_name=cfg.env.name)  # fmt: skip
        for s in t.steps:
            ep.observation = s.observation
            ep.admissible = list((s.model_extra or {}).get("admissible_actions") or [])
            ep.turns.append(Turn(s.observation, ep.admissible))
            msgs = prompter.prompt_for(ep)
            items.append(DemoItem(msgs, s.action, _skill_cards(ep.retrieved), t.task_description, t.task_category,
                                  s.step_index, "trajectories", t.id))  # fmt: skip
            ep.history.append((s.observation, s.action))
            ep.steps.append(s)
            ep.turns[-1].reply = s.action
        if len(items) >= n:
            break
    return whole_episodes(items, n) if cfg.agent.context == "conversation" else items[:n]


def build_sft_demos(
    bank: SkillBank | None,
    cfg: KrillConfig,
    source: str | list[Trajectory] = "expert",
    teacher: Any = None,
    n: int | None = None,
) -> list[dict[str, Any]]:
    """Skill-augmented demos (chat messages) from expert rollouts or given successful trajectories."""
    n = n or cfg.sft.num_examples
    if isinstance(source, str):
        if source != "expert":
            raise KrillError(f"unknown demo source {source!r}; use 'expert' or a list of trajectories")
        items = expert_items(bank, cfg, n)
    else:
        items = trajectory_items(source, bank, cfg, n)
    if not items:
        raise KrillError("no demo steps: no successful episode/trajectory to learn from")
    return finish_demos(items, cfg, teacher)


def save_demos(demos: list[dict[str, Any]], path: str | Path) -> Path:
    """Chat-messages JSONL, one demo per line (`datasets.load_dataset("json", data_files=path)`)."""
    return write_jsonl(path, demos)


def load_demos(path: str | Path) -> list[dict[str, Any]]:
    """Read a demo JSONL; every line needs `messages` ending with an assistant turn."""
    demos = []
    for i, row in enumerate(read_jsonl(path, max_bytes=MAX_TRAJECTORY_BYTES), 1):
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list) or not msgs or not isinstance(msgs[-1], dict):
            raise KrillError('expected {"messages": [...]}', path=path, where=f"line {i}")
        if msgs[-1].get("role") != "assistant":
            raise KrillError("the last message must be the assistant's", path=path, where=f"line {i}")
        demos.append(row)
    if not demos:
        raise KrillError("no demos in file", path=path)
    return demos


def load_demo_source(
    path: str | Path, bank: SkillBank | None, cfg: KrillConfig, n: int
) -> list[dict[str, Any]]:
    """`--demos FILE`: chat demos as they are, or successful trajectories (krill/ETO-converted) turned into demos."""
    first = (
        next(iter(read_jsonl(path, max_bytes=MAX_TRAJECTORY_BYTES)), None)
        if str(path).endswith(".jsonl")
        else None
    )
    if isinstance(first, dict) and "messages" in first:
        return load_demos(path)[:n]
    from krill.formats.trajectories import load_trajectories

    return build_sft_demos(bank, cfg, source=load_trajectories(path), n=n)
