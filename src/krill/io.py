"""The one place krill reads and writes files.

Every write is atomic (temp file in the same directory, fsync, rename) so an interrupted run never
leaves a truncated file where a good one was. Every read error becomes a one-line `KrillError` that
names the file and the place (line/column, JSONL line number).
"""

from __future__ import annotations

import glob
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from krill.errors import KrillError

MAX_JSON_DEPTH = 200  # deeper nesting is an attack or a bug, never a real bank
# A temp file untouched this long belongs to a writer that died (kill -9, power loss): no live write
# of krill's (the largest is a few hundred MB of safetensors) leaves its temp file idle for an hour.
STALE_TMP_SECONDS = 3600


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically: temp file + fsync + rename; the old file survives failures."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _silent_unlink(tmp)
        raise KrillError(f"cannot write file ({exc.strerror or exc})", path=path) from exc
    except BaseException:
        _silent_unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temp_files(path: str | Path, max_age: float = STALE_TMP_SECONDS) -> None:
    """Delete the temp files a killed writer of `path` left behind (`.<name>.*.tmp`, idle > `max_age` s)."""
    path, now = Path(path), time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > max_age:
                tmp.unlink()
        except OSError:  # another process removed it first, or it is not ours to remove
            continue


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """The one JSON writer: UTF-8, no NaN (NaN is not JSON), stable key order as given."""
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + ("\n" if indent else "")


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    return atomic_write_text(path, to_json(obj, indent=indent))


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    return atomic_write_text(path, "".join(to_json(r, indent=None) + "\n" for r in rows))


def append_jsonl(path: str | Path, row: Any) -> None:
    """Append one line and fsync, so a kill -9 loses at most the line being written.

    A torn last line (from a kill mid-write) is repaired by `read_jsonl(..., repair_tail=True)`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = to_json(row, indent=None) + "\n"
    try:
        with open(path, "ab") as fh:
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise KrillError(f"cannot append ({exc.strerror or exc})", path=path) from exc


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file with clear errors for missing files, directories and bad encodings."""
    path = Path(path)
    if not path.exists():
        raise KrillError("file not found", path=path)
    if path.is_dir():
        raise KrillError("is a directory, expected a file", path=path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise KrillError(
            f"not valid UTF-8 text (byte {exc.start})", path=path, where=f"line {line}"
        ) from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json(text: str, *, path: str | Path | None = None, line_offset: int = 0) -> Any:
    """Parse JSON; errors name the line and column. NaN/Infinity literals are rejected."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno + line_offset}, column {exc.colno}"
        raise KrillError(f"invalid JSON: {exc.msg}", path=path, where=where) from None
    except ValueError as exc:  # NaN / Infinity
        raise KrillError(f"invalid JSON: {exc}", path=path) from None
    except RecursionError:
        raise KrillError("invalid JSON: nesting too deep", path=path) from None
    _check_depth(obj, path)
    return obj


def read_json(path: str | Path) -> Any:
    return parse_json(read_text(path), path=path)


def read_jsonl(path: str | Path, *, repair_tail: bool = False) -> Iterator[Any]:
    """Stream a JSONL file one object per line; a broken line names its line number.

    With `repair_tail`, a torn final line (no newline, from a killed writer) is dropped instead of
    raising: that is how resumable appenders recover.
    """
    text = read_text(path)
    lines = text.split("\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield parse_json(line, path=path, line_offset=i)
        except KrillError:
            if repair_tail and i == last:  # no trailing newline: a torn write
                return
            raise


def truncate_torn_tail(path: str | Path) -> None:
    """Cut a JSONL file back to its last complete line (after a kill mid-append)."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


def check_finite(values: Iterable[float], *, path: str | Path | None, where: str) -> None:
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise KrillError(f"non-finite or non-numeric value {v!r}", path=path, where=where)


def _check_depth(obj: Any, path: str | Path | None) -> None:
    stack = [(obj, 0)]
    while stack:
        cur, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise KrillError(f"invalid JSON: nesting deeper than {MAX_JSON_DEPTH}", path=path)
        if isinstance(cur, dict):
            stack.extend((v, depth + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, depth + 1) for v in cur)


def _silent_unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
