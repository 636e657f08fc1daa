"""ALFWorld on its real TextWorld engine: generated games from the shipped floor plans, or real data.

`make_env("alfworld", split, cfg=cfg)` → `AlfworldEnv`; `generate_games(out_dir, per_split, seed)`
writes a game set (`krill env generate alfworld`).
"""

from krill.envs.alfworld.env import AlfworldEnv, make_alfworld
from krill.envs.alfworld.generate import SPLITS, default_games_dir, ensure_games, generate_games

__all__ = ["SPLITS", "AlfworldEnv", "default_games_dir", "ensure_games", "generate_games", "make_alfworld"]
