"""Trajectory files: JSONL (one trajectory per line, streamed) and the Rust krill JSON array.

The format is detected by the first non-space character (`[` → array, `{` → JSONL). Errors name the
line (JSONL) or the array index, and the field path inside the trajectory.
`TrajectoryWriter` appends one line per finished trajectory with fsync, so a killed collection
resumes where it stopped (`done_ids()`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from krill.categories import normalize_category
from krill.errors import KrillError
from krill.formats.banks import parse_json_finite
from krill.io import (
    MAX_TRAJECTORY_BYTES,
    append_jsonl,
    read_jsonl,
    read_text,
    require_file,
    truncate_torn_tail,
    write_json,
    write_jsonl,
)
from krill.schema import Trajectory, validate_as

TRAJECTORIES_HINT = "run `krill collect` to record some, or pass a trajectories path"


def iter_trajectories(path: str | Path, *, require_steps: bool = False) -> Iterator[Trajectory]:
    """Yield trajectories one at a time from a JSONL file or a JSON array."""
    require_file(path, TRAJECTORIES_HINT)
    text = read_text(path, max_bytes=MAX_TRAJECTORY_BYTES)
    stripped = text.lstrip()
    if not stripped:
        raise KrillError("empty file, expected trajectories (JSONL or a JSON array)", path=path)
    if stripped[0] == "[":
        rows = parse_json_finite(text, path)
        for i, row in enumerate(rows):
            yield _validate(row, path, f"[{i}]", require_steps)
        return
    if stripped[0] != "{":
        raise KrillError("expected trajectories as JSONL objects or a JSON array", path=path, where="line 1")
    for i, line in enumerate(text.split("\n")):
        if line.strip():
            yield _validate(
                parse_json_finite(line, path, f"line {i + 1}: ", i), path, f"line {i + 1}", require_steps
            )


def load_trajectories(path: str | Path, *, require_steps: bool = False) -> list[Trajectory]:
    """All trajectories in a file; an empty file (or array) or a repeated id is an error."""
    trajs, seen = [], {}
    for i, t in enumerate(iter_trajectories(path, require_steps=require_steps)):
        if t.id in seen:  # resume and GRPO grouping key on ids: two episodes must not share one
            raise KrillError(
                f"duplicate trajectory id {t.id!r} (trajectories #{seen[t.id] + 1} and #{i + 1})", path=path
            )
        seen[t.id] = i
        trajs.append(t)
    if not trajs:
        raise KrillError("no trajectories in file", path=path)
    return trajs


def save_trajectories(path: str | Path, trajs: Iterable[Trajectory]) -> Path:
    """Write atomically: a JSON array if the path ends with .json (Rust krill), else JSONL."""
    rows = [_dump(t) for t in trajs]
    if str(path).endswith(".json"):
        return write_json(path, [_rust_compatible(r) for r in rows])
    return write_jsonl(path, rows)


class TrajectoryWriter:
    """Append trajectories one per line with fsync; `resume=True` keeps (and repairs) what is there.

    For a `.json` target (the Rust array format) lines go to `<path>.partial.jsonl` and `close()`
    writes the array atomically, so the array file is never half-written.
    """

    def __init__(self, path: str | Path, resume: bool = False):
        self.path = Path(path)
        self.is_array = self.path.suffix == ".json"
        self.log = self.path.with_name(self.path.name + ".partial.jsonl") if self.is_array else self.path
        self._done: set[str] = set()
        if resume:
            self._recover()
        else:
            write_jsonl(self.log, [])  # start fresh (atomically replaces an old log)

    def _recover(self) -> None:
        if self.is_array and not self.log.exists() and self.path.exists():
            write_jsonl(self.log, [_dump(t) for t in iter_trajectories(self.path)])
        if not self.log.exists():
            write_jsonl(self.log, [])
            return
        truncate_torn_tail(self.log)  # a kill mid-append leaves a partial last line
        for row in self._log_rows():
            if isinstance(row, dict) and "id" in row:
                self._done.add(str(row["id"]))

    def _log_rows(self) -> Iterator[Any]:
        return read_jsonl(self.log, repair_tail=True, max_bytes=MAX_TRAJECTORY_BYTES)

    def done_ids(self) -> set[str]:
        """Ids of trajectories already written (skip these when resuming)."""
        return set(self._done)

    def write(self, traj: Trajectory) -> None:
        append_jsonl(self.log, _dump(traj))
        self._done.add(traj.id)

    def close(self) -> Path:
        """Finish: for a .json target, write the array and remove the line log."""
        if self.is_array:
            rows = [_rust_compatible(r) for r in self._log_rows()]
            write_json(self.path, rows)
            os.unlink(self.log)
        return self.path

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def _validate(row: Any, path: Any, where: str, require_steps: bool) -> Trajectory:
    if not isinstance(row, dict):
        raise KrillError(f"expected a trajectory object, got {type(row).__name__}", path=path, where=where)
    if row.get("task_category") is not None and not isinstance(row["task_category"], dict):
        normalize_category(row["task_category"], path=path, where=f"{where}: task_category")
    try:
        traj = validate_as(Trajectory, row)
    except KrillError as exc:  # re-anchor: file, then line/index, then field path
        raise KrillError(str(exc), path=path, where=where) from None
    if require_steps and not traj.steps:
        raise KrillError("trajectory has no steps", path=path, where=f"{where}: steps")
    return traj


_KRILL_STEP_EXTRAS = ("valid", "think")


def _dump(traj: Trajectory | dict) -> dict[str, Any]:
    """The stored shape, without krill's empty per-step extras."""
    if isinstance(traj, dict):
        return traj
    d = traj.model_dump(mode="json", exclude_none=False)
    for step in d["steps"]:
        for k in _KRILL_STEP_EXTRAS:
            if step.get(k) is None:
                step.pop(k, None)
    return d


def _rust_compatible(row: dict[str, Any]) -> dict[str, Any]:
    """JSON arrays are the Rust krill format, whose reader requires every metadata field."""
    meta = row.setdefault("metadata", {})
    meta.setdefault("environment", "")
    meta.setdefault("num_steps", len(row.get("steps", [])))
    meta.setdefault("total_tokens", 0)
    meta.setdefault("skills_used", [])
    return row
