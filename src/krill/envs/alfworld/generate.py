"""Write ALFWorld game folders: `<out>/<split>/<task folder>/trial_…/{game.tw-pddl, traj_data.json}`.

The layout is ALFWorld's `json_2.1.1` layout, so ALFWorld's own loaders (AlfredTWEnv, which needs
`traj_data.json` + `game.tw-pddl` with `solvable`) and its hand-coded expert can read these games,
and krill reads real ALFWorld data and generated games with the same code. Every game is a pure
function of (split, index, seed); writing is atomic per file and resumable (existing complete games
are kept), and `manifest.json` (written last) lists the games of each split.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path
from typing import Any

from krill.errors import KrillError
from krill.io import read_json, write_json
from krill.progress import progress_bar

SPLITS = ("train", "valid_seen", "valid_unseen")
GENERATOR_VERSION = 2  # part of the default cache folder name: bump when games change
MANIFEST = "manifest.json"


def _sizes(per_split: dict[str, int] | int) -> dict[str, int]:
    if isinstance(per_split, int):
        per_split = dict.fromkeys(SPLITS, per_split)
    unknown = set(per_split) - set(SPLITS)
    if unknown:
        raise KrillError(f"unknown ALFWorld split(s) {sorted(unknown)}; known: {', '.join(SPLITS)}")
    if any(not isinstance(n, int) or n < 0 for n in per_split.values()):
        raise KrillError(f"games per split must be non-negative integers, got {per_split}")
    return {s: per_split.get(s, 0) for s in SPLITS}


def write_game(out_dir: Path, split: str, index: int, seed: int) -> dict[str, Any]:
    """Write one game (unless already complete) and return its manifest entry."""
    from krill.envs.alfworld.pddl import game_json
    from krill.envs.alfworld.tasks import sample_game

    spec = sample_game(split, index, seed)
    folder = out_dir / split / spec.folder
    game_file = folder / "game.tw-pddl"
    if not game_file.exists():  # the game file is written last: it marks a complete folder
        write_json(folder / "traj_data.json", spec.traj_data())
        write_json(game_file, game_json(spec), indent=None)
    return {
        "task_id": spec.folder,
        "task_type": spec.task_type,
        "category": spec.category,
        "description": spec.description,
        "scene": spec.scene,
    }


def generate_games(out_dir: str | Path, per_split: dict[str, int] | int, seed: int) -> dict[str, Any]:
    """Generate games into `out_dir` (resumable) and write its manifest; returns the manifest.

    >>> generate_games("/tmp/alf", {"valid_unseen": 12}, seed=0)["splits"]["valid_unseen"][0]["task_type"]
    'pick_two_obj_and_place'
    """
    out = Path(out_dir)
    sizes = _sizes(per_split)
    manifest: dict[str, Any] = {"generator": "krill", "version": GENERATOR_VERSION, "seed": seed,
                                "sizes": sizes, "splits": {}}  # fmt: skip
    with progress_bar("generate ALFWorld games", sum(sizes.values())) as bar:
        for split, n in sizes.items():
            entries = []
            for index in range(n):
                entries.append(write_game(out, split, index, seed))
                bar.advance()
            manifest["splits"][split] = entries
    write_json(out / MANIFEST, manifest)
    return manifest


def sizes_key(sizes: dict[str, int]) -> str:
    text = f"v{GENERATOR_VERSION}:" + ",".join(f"{s}={sizes[s]}" for s in SPLITS)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def default_games_dir(cfg) -> Path:
    """`<cache_dir>/alfworld/games-<seed>-<sizes hash>` (or `env.alfworld.games_dir` when set)."""
    if cfg.env.alfworld.games_dir:
        return Path(cfg.env.alfworld.games_dir).expanduser()
    key = sizes_key(_cfg_sizes(cfg))
    return Path(cfg.cache_dir).expanduser() / "alfworld" / f"games-{cfg.env.seed}-{key}"


def _cfg_sizes(cfg) -> dict[str, int]:
    a = cfg.env.alfworld
    return {"train": a.train_games, "valid_seen": a.valid_seen_games, "valid_unseen": a.valid_unseen_games}


def ensure_games(cfg) -> Path:
    """The generated game set for `cfg`, generating it on first use (~30 s for the default 1,274)."""
    root = default_games_dir(cfg)
    if (root / MANIFEST).exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    # Pool workers start together: one generates, the others wait on the lock, then find the manifest.
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / MANIFEST).exists():
            generate_games(root, _cfg_sizes(cfg), cfg.env.seed)
    return root


def load_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        raise KrillError(
            "no ALFWorld games here (missing manifest.json); run `krill env generate alfworld`", path=root
        )
    data = read_json(path)
    if not isinstance(data, dict) or "splits" not in data:
        raise KrillError("not a krill ALFWorld manifest (no 'splits')", path=path)
    return data
