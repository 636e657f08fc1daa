"""krill: SkillRL for real — distill skills from agent trajectories, then SFT and GRPO with an evolving bank."""

__version__ = "0.1.0"
