"""What a run was made with, recorded once and checked on every resume: one drift rule for every verb.

A resumable output (a run folder, or a single file: trajectories, a bank, an evaluation) records the
effective config it is being made with: `<folder>/config.yaml`, or `<parent>/.<name>.config.yaml`
beside a file. `record_config(cfg, target)` writes that record when there is none, and when there
is one it compares: a resume whose settings differ (say `eval.split`, `seed` or `env.name`) would
mix two experiments in one output and then describe them as one, so it is refused with a one-line
error naming the first differing key and both values. Keys in `OPERATIONAL` change how fast or
where a run goes, not what it computes, and may change between resumes; a key the record does not
have yet (a newer krill) counts as unchanged while it holds its default.

Inside `accepting_changed_config()` (the CLI's `--force-config`) a changed record is not refused but
superseded: the old record is kept as `<record>.superseded-N.yaml`, and a line in
`<record>.history.jsonl` says when, which keys changed (old → new) and which phases the folder's
`state.json` had finished under the old settings. Phases already done are skipped as before, so
their own records are never rewritten.

Records hold the public config (`KrillConfig.to_public_dict`): env var names, never key values.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from krill.config import KrillConfig
from krill.config_renames import apply_renames
from krill.errors import KrillError
from krill.io import append_jsonl, atomic_write_text, read_text

log = logging.getLogger(__name__)
ACCEPT_CHANGED = contextvars.ContextVar("krill_accept_changed_config", default=False)

# May differ between an interrupted run and its resume: they do not change what is computed.
OPERATIONAL = (
    "preset",  # a label: the values it set are compared one by one
    "cache_dir",
    "model.policy.device",
    "model.policy.batch_size",
    "model.policy.static_cache",  # how decoding runs, not what it computes
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
    "train.report_to",
)


def record_path(target: str | Path) -> Path:
    """Where `target`'s record lives: `config.yaml` in a folder, `.<name>.config.yaml` beside a file."""
    target = Path(target)
    if target.is_dir() or (not target.exists() and not target.suffix):
        return target / "config.yaml"
    return target.parent / f".{target.name}.config.yaml"


def record_config(cfg: KrillConfig, target: str | Path, *, check: bool = True,
                  may_grow: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """Check `cfg` against `target`'s record (a changed setting is a `KrillError`, or superseded inside
    `accepting_changed_config`), then (re)write it. `check=False`: the output starts over (no resume),
    so the old record is simply replaced. `may_grow`: keys a resume may raise (`rl.iterations`:
    `krill rl --resume` continues the schedule)."""
    path = record_path(target)
    if check and path.exists():
        changes = config_changes(cfg, path, may_grow)
        if changes and ACCEPT_CHANGED.get():
            supersede(path, changes)
        elif changes:
            raise drift_error(path, changes)
    return atomic_write_text(path, yaml.safe_dump(cfg.to_public_dict(), sort_keys=False))


@contextmanager
def accepting_changed_config() -> Iterator[None]:
    """Resumes inside this block accept changed settings (recorded as history) instead of refusing them."""
    token = ACCEPT_CHANGED.set(True)
    try:
        yield
    finally:
        ACCEPT_CHANGED.reset(token)


def check_unchanged(cfg: KrillConfig, path: Path, may_grow: tuple[str, ...] = ()) -> None:
    """Refuse `cfg` when a non-operational setting differs from the record at `path`."""
    changes = config_changes(cfg, path, may_grow)
    if changes:
        raise drift_error(path, changes)


def config_changes(
    cfg: KrillConfig, path: Path, may_grow: tuple[str, ...] = ()
) -> list[tuple[str, Any, Any]]:
    """(key, recorded, now) for every non-operational setting of `cfg` that differs from the record."""
    try:
        recorded = yaml.safe_load(read_text(path))
    except yaml.YAMLError:
        raise KrillError("the run's config record is damaged (not YAML); restore it or use another --out",
                         path=path) from None  # fmt: skip
    if not isinstance(recorded, dict):
        raise KrillError("the run's config record is damaged (not a mapping); use another --out", path=path)
    now, then = _flat(cfg.to_public_dict()), _flat(apply_renames(recorded, str(path), record=True))
    defaults = _flat(KrillConfig(cache_dir=cfg.cache_dir).to_public_dict())
    changes = []
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
            changes.append((key, old, value))
    return changes


def drift_error(path: Path, changes: list[tuple[str, Any, Any]]) -> KrillError:
    """One line: the first changed key's values, the other changed keys by name, and the ways out."""
    key, old, value = changes[0]
    more = f" (and {len(changes) - 1} more: {', '.join(k for k, _, _ in changes[1:])})" if changes[1:] else ""
    return KrillError(
        f"this run was made with {old!r}, not {value!r}{more}: resume with the run's settings "
        "(see its config.yaml), use another --out, or accept the change with --force-config",
        path=path,
        where=key,
    )


def supersede(path: Path, changes: list[tuple[str, Any, Any]]) -> Path:
    """Keep the record at `path` as `<record>.superseded-N.yaml` and log the change to its history."""
    stem = path.name.removesuffix(".yaml")
    n = 1 + sum(1 for _ in path.parent.glob(f"{stem}.superseded-*.yaml"))
    kept = atomic_write_text(path.with_name(f"{stem}.superseded-{n}.yaml"), read_text(path))
    state = path.parent / "state.json"
    try:
        done = sorted(json.loads(read_text(state)).get("done", {})) if state.exists() else []
    except (ValueError, AttributeError, KrillError):
        done = []  # a damaged state is reported by the run itself
    append_jsonl(path.with_name(f"{stem}.history.jsonl"), {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "changed": {k: [old, new] for k, old, new in changes},
        "previous_record": kept.name,
        "phases_done_before": done,
    })  # fmt: skip
    changed = ", ".join(f"{k} ({old!r} → {new!r})" for k, old, new in changes)
    log.warning(
        "accepted changed settings for %s: %s; the old record is kept as %s", path.parent, changed, kept.name
    )
    return kept


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
