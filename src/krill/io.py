"""The one place krill reads and writes files.

Every write is atomic (temp file in the same directory, fsync, rename) so an interrupted run never
leaves a truncated file where a good one was. Every read error becomes a one-line `KrillError` that
names the file and the place (line/column, JSONL line number).
"""

from __future__ import annotations

import errno
import glob
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from krill.errors import KrillError

MAX_JSON_DEPTH = 200  # deeper nesting is an attack or a bug, never a real bank
# A temp file untouched this long belongs to a writer that died (kill -9, power loss): no live write
# of krill's (the largest is a few hundred MB of safetensors) leaves its temp file idle for an hour.
STALE_TMP_SECONDS = 3600
# Size caps for input files: far above any real one, so a file past them is a mistake (a disk image,
# a log) and is refused before it is read, instead of filling memory.
MAX_INPUT_BYTES = 512 * 2**20  # banks, configs, eval results
MAX_TRAJECTORY_BYTES = 2 * 2**30  # trajectory files, demos, resumable episode logs
# A temp file's name is `.<name>.<8 hex>.tmp`: the name part is clipped so that it fits NAME_MAX (255).
_TEMP_NAME_BYTES = 240


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically: temp file + fsync + rename; the old file survives failures.

    A new file gets the mode `open(path, "w")` would give (0o666 & ~umask); a replaced file keeps its mode.
    """
    path = Path(path)
    _make_parent(path)
    remove_stale_temp_files(path)
    mode = _existing_mode(path)
    try:
        fd, tmp = _create_temp(path)
    except OSError as exc:
        raise KrillError(f"cannot write file ({exc.strerror or exc})", path=path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                _best_effort_chmod(fh.fileno(), mode)
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
    for tmp in path.parent.glob(f"{glob.escape(_temp_stem(path))}*.tmp"):
        try:
            if now - tmp.stat().st_mtime > max_age:
                tmp.unlink()
        except OSError:  # another process removed it first, or it is not ours to remove
            continue


def _temp_stem(path: Path) -> str:
    """`.<name>.`, the name clipped so that the temp file's name stays within NAME_MAX."""
    return f".{os.fsdecode(os.fsencode(path.name)[:_TEMP_NAME_BYTES])}."


def _create_temp(path: Path) -> tuple[int, str]:
    """A new temp file beside `path`, created as `open(..., "w")` would create it (0o666 & ~umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        tmp = str(path.parent / f"{_temp_stem(path)}{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path.parent))


def current_umask() -> int:
    """The process umask (read by setting it and putting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _existing_mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # no file yet (or none reachable): the umask decides
        return None


def _best_effort_chmod(fd: int, mode: int) -> None:
    try:
        os.fchmod(fd, mode)
    except OSError:  # a filesystem without modes (FAT, some network mounts): keep the default
        pass


def _make_parent(path: Path) -> None:
    """Create the folder `path` goes in; a file in the way or an uncreatable folder is a KrillError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = _file_in_the_way(path.parent)
        if blocker is not None:
            raise KrillError(f"cannot write file: {blocker} is a file, not a folder", path=path) from None
        folder = exc.filename or path.parent
        raise KrillError(f"cannot create folder {folder} ({exc.strerror or exc})", path=path) from None


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest existing ancestor of `folder` (itself included) when it is not a folder."""
    for p in (folder, *folder.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


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

    A torn last line (from a kill mid-write) is repaired by `read_jsonl(..., repair_tail=True)`. A
    symlink in the log's place is refused: a run's logs must not write outside the run.
    """
    path = Path(path)
    _make_parent(path)
    line = to_json(row, indent=None) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "ab") as fh:
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KrillError("is a symbolic link; krill appends only to its own files", path=path) from None
        raise KrillError(f"cannot append ({exc.strerror or exc})", path=path) from exc


def require_file(path: str | Path, how_to_make: str) -> None:
    """A missing input says how to make one: `file not found (run `krill distill` to create it, ...)`."""
    if not os.path.lexists(path):  # a dangling link or a link loop gets read_text's exact message instead
        raise KrillError(f"file not found ({how_to_make})", path=path)


def read_text(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """Read a UTF-8 text file with clear errors for missing files, directories and bad encodings."""
    path = Path(path)
    data = read_bytes(path, max_bytes=max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise KrillError(
            f"not valid UTF-8 text (byte {exc.start})", path=path, where=f"line {line}"
        ) from None


def read_bytes(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """Read a regular file of at most `max_bytes`; a FIFO or device is refused before it is opened."""
    try:
        size = _check_input(os.stat(path), path, max_bytes)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # never blocks, even on a FIFO
        with os.fdopen(fd, "rb") as fh:
            size = _check_input(os.fstat(fd), path, max_bytes)  # the path may have changed since stat
            data = fh.read(size + 1)
            if len(data) > size:  # it grew since (or a /proc file that says size 0): read up to the cap
                data += fh.read(max_bytes + 1 - len(data))
    except OSError as exc:
        raise KrillError(
            _READ_ERRORS.get(exc.errno, f"cannot read file ({exc.strerror or exc})"), path=path
        ) from None
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes, path)
    return data


_READ_ERRORS = {
    errno.ENOENT: "file not found",
    errno.ELOOP: "symlink loop (too many levels of symbolic links)",
    errno.EACCES: "permission denied, cannot read the file",
    errno.EPERM: "permission denied, cannot read the file",
}
_SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def _check_input(st: os.stat_result, path: str | Path, max_bytes: int) -> int:
    """The size of a regular file within the cap; anything else is a KrillError."""
    if stat.S_ISDIR(st.st_mode):
        raise KrillError("is a directory, expected a file", path=path)
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _SPECIAL_FILES if test(st.st_mode)), "a special file")
        raise KrillError(f"not a regular file ({kind}), expected a file", path=path)
    if st.st_size > max_bytes:
        raise _too_large(st.st_size, max_bytes, path)
    return st.st_size


def _too_large(size: int, max_bytes: int, path: str | Path) -> KrillError:
    return KrillError(f"file too large ({size} bytes), larger than the {_human(max_bytes)} limit", path=path)


def _human(n: int) -> str:
    for unit, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= unit:
            return f"{n / unit:g} {name}"
    return f"{n} B"


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


def read_json(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    return parse_json(read_text(path, max_bytes=max_bytes), path=path)


def read_jsonl(
    path: str | Path, *, repair_tail: bool = False, max_bytes: int = MAX_INPUT_BYTES
) -> Iterator[Any]:
    """Stream a JSONL file one object per line; a broken line names its line number.

    With `repair_tail`, a torn final line (no newline, from a killed writer) is dropped instead of
    raising: that is how resumable appenders recover.
    """
    text = read_text(path, max_bytes=max_bytes)
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
