"""The ablation's variants (paper Table 3, and the options beyond it): what each trains and shows.

A registry with no heavy imports, so the CLI's `--variants` help is generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from krill.errors import KrillError


@dataclass(frozen=True)
class Variant:
    """One row of the table: what the policy is trained with and what its prompt holds."""

    description: str
    context: Literal["skills", "none", "memory"] = "skills"  # skills, nothing, or raw trajectories
    sft: bool = False  # skill-augmented SFT (cold start) first
    rl: bool = False  # then GRPO
    evolve: bool = False  # with recursive skill evolution during GRPO
    overrides: tuple[tuple[str, Any], ...] = ()  # further config keys (the options beyond the paper)
    paper: bool = True  # a row of the paper's table (run by default); else opt-in with --variants
    without_skills: bool = False  # also evaluate the trained policy with no skills in the prompt

    @property
    def trained(self) -> bool:
        return self.sft or self.rl


VARIANTS: dict[str, Variant] = {
    "base": Variant("untrained policy, cycle-0 skills retrieved"),
    "no-skills": Variant("untrained policy, no skills in the prompt", context="none"),
    "memory": Variant("untrained policy, top-K raw successful trajectories retrieved instead of skills",
                      context="memory"),
    "sft": Variant("skill-augmented SFT (cold start) only", sft=True),
    "grpo": Variant("GRPO from the base model, no skills anywhere", context="none", rl=True),
    "skillrl-no-evolution": Variant("SFT + GRPO, cycle-0 bank frozen", sft=True, rl=True),
    "skillrl": Variant("SFT + GRPO + recursive skill evolution (the full method)", sft=True, rl=True, evolve=True),
    "skillrl-no-sft": Variant("GRPO with skills and evolution, no cold start", rl=True, evolve=True),
    # beyond the paper (README: configuration): opt-in, `--variants all` or by name
    "skillrl-gigpo": Variant("skillrl with GiGPO's step-level credit (rl.advantage=gigpo)", sft=True, rl=True,
                             evolve=True, overrides=(("rl.advantage", "gigpo"),), paper=False),
    "skillrl-dynamic": Variant("skillrl with DAPO's dynamic sampling (rl.dynamic_sampling)", sft=True, rl=True,
                               evolve=True, overrides=(("rl.dynamic_sampling", True),), paper=False),
    "skillrl-curriculum": Variant("skillrl with skills withdrawn over GRPO (skills.curriculum=linear), "
                                  "evaluated with skills", sft=True, rl=True, evolve=True,
                                  overrides=(("skills.curriculum", "linear"),), paper=False, without_skills=True),
}  # fmt: skip
PAPER_VARIANTS = [name for name, v in VARIANTS.items() if v.paper]
REFERENCE = "skillrl"
MAX_SEEDS = 100  # each seed is a whole SFT + RL per trained variant


def check_seeds(seeds: int) -> None:
    if not 1 <= seeds <= MAX_SEEDS:
        raise KrillError(f"must be between 1 and {MAX_SEEDS}, got {seeds}", where="--seeds")


def parse_variants(text: str | None) -> list[str]:
    """`a,b,c` → variant names in table order (the paper's for None/empty, every one for `all`); an
    unknown name is an error."""
    if text is None or text == "":
        return list(PAPER_VARIANTS)
    if text.strip() == "all":
        return list(VARIANTS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise KrillError(f"no variant named in {text!r}; choose from {', '.join(VARIANTS)} or all",
                         where="--variants")  # fmt: skip
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise KrillError(
            f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}", where="--variants"
        )
    return [n for n in VARIANTS if n in names]
