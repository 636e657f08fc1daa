"""What a run was made with, recorded once and checked on every resume: one drift rule for every verb.

A resumable output (a run folder, or a single file: trajectories, a bank, an evaluation) records the
effective config it is being made with: `<folder>/config.yaml`, or `<parent>/.<name>.config.yaml`
beside a file. `record_config(cfg, target)` writes that record when there is none, and when there
is one it compares: a resume whose settings differ (say `eval.split`, `seed` or `env.name`) would
mix two experiments in one output and then describe them as one, so it is refused with a one-line
error naming the first differing key and both values. Keys in `OPERATIONAL` change how fast or
where a run goes, not what it computes, and may change between resumes; a key the record does not
have yet (a newer krill) counts as unchanged while it holds its default.

Records hold the public config (`KrillConfig.to_public_dict`): env var names, never key values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.io import atomic_write_text, read_text

# May differ between an interrupted run and its resume: they do not change what is computed.
OPERATIONAL = (
    "preset",  # a label: the values it set are compared one by one
    "cache_dir",
    "model.policy.device",
    "model.policy.batch_size",
    "model.*.api_base",
    "model.*.api_key_env",
    "model.*.concurrency",
    "model.*.timeout",
    "model.*.max_retries",
    "env.url",
    "env.token_env",
    "env.workers",
    "env.pool_timeout",
    "distill.concurrency",
    "sft.micro_batch_size",
    "sft.checkpoint_every",
    "rl.micro_batch_tokens",
    "rl.checkpoint_every",
)


def record_path(target: str | Path) -> Path:
    """Where `target`'s record lives: `config.yaml` in a folder, `.<name>.config.yaml` beside a file."""
    target = Path(target)
    if target.is_dir() or (not target.exists() and not target.suffix):
        return target / "config.yaml"
    return target.parent / f".{target.name}.config.yaml"


def record_config(cfg: KrillConfig, target: str | Path, *, check: bool = True,
                  may_grow: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """Check `cfg` against `target`'s record (a changed setting is a `KrillError`), then (re)write it.
    `check=False`: the output starts over (no resume), so the old record is simply replaced.
    `may_grow`: keys a resume may raise (`rl.iterations`: `krill rl --resume` continues the schedule)."""
    path = record_path(target)
    if check and path.exists():
        check_unchanged(cfg, path, may_grow)
    return atomic_write_text(path, yaml.safe_dump(cfg.to_public_dict(), sort_keys=False))


def check_unchanged(cfg: KrillConfig, path: Path, may_grow: tuple[str, ...] = ()) -> None:
    """Refuse `cfg` when a non-operational setting differs from the record at `path`."""
    try:
        recorded = yaml.safe_load(read_text(path))
    except yaml.YAMLError:
        raise KrillError("the run's config record is damaged (not YAML); restore it or use another --out",
                         path=path) from None  # fmt: skip
    if not isinstance(recorded, dict):
        raise KrillError("the run's config record is damaged (not a mapping); use another --out", path=path)
    now, then = _flat(cfg.to_public_dict()), _flat(recorded)
    defaults = _flat(KrillConfig(cache_dir=cfg.cache_dir).to_public_dict())
    for key, value in now.items():
        if _operational(key):
            continue
        old = then.get(key, defaults.get(key))
        grows = (
            key in may_grow
            and isinstance(old, int | float)
            and isinstance(value, int | float)
            and value >= old
        )
        if old != value and not grows:
            raise KrillError(
                f"this run was made with {old!r}, not {value!r}: resume with the run's settings "
                "(see its config.yaml) or use another --out",
                path=path,
                where=key,
            )


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _operational(key: str) -> bool:
    parts = key.split(".")
    for pattern in OPERATIONAL:
        want = pattern.split(".")
        if len(want) == len(parts) and all(w in ("*", p) for w, p in zip(want, parts, strict=True)):
            return True
    return False
