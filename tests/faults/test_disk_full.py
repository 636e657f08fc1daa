"""Disk full: a write that raises ENOSPC gives a clear error and leaves the previous file intact."""

from __future__ import annotations

import errno
import os
import time

import pytest

from krill.errors import KrillError
from krill.io import append_jsonl, read_json, write_json
from krill.schema import Skill, SkillBank


class _FullDisk:
    """Make every write of more than `budget` bytes fail with ENOSPC, like a full tmpfs."""

    def __init__(self, monkeypatch, budget: int = 16):
        real_fdopen = os.fdopen

        def fdopen(fd, mode="r", *a, **kw):
            fh = real_fdopen(fd, mode, *a, **kw)
            if "w" in mode or "a" in mode:
                real_write = fh.write

                def write(data):
                    if len(data) > budget:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    return real_write(data)

                fh.write = write
            return fh

        monkeypatch.setattr(os, "fdopen", fdopen)


def test_bank_write_enospc_keeps_previous_bank(tmp_path, monkeypatch, faults):
    from krill.formats.banks import load_bank, save_bank

    path = tmp_path / "skill_bank.json"
    bank = SkillBank()
    bank.add(
        Skill(name="Heat first", principle="Use the microwave.", when_to_apply="hot tasks", category="Heat")
    )
    save_bank(bank, path)
    before = path.read_bytes()
    bank.add(
        Skill(name="Cool first", principle="Use the fridge.", when_to_apply="cool tasks", category="Cool")
    )
    _FullDisk(monkeypatch)
    faults.inject("disk full (ENOSPC)")
    with pytest.raises(KrillError, match="No space left on device") as exc:
        save_bank(bank, path)
    assert str(path) in str(exc.value)
    monkeypatch.undo()
    assert path.read_bytes() == before, "previous bank must be intact"
    assert len(load_bank(path)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["skill_bank.json"], "no temp files left behind"


def test_json_write_enospc_via_cli_exit_2(tmp_path, monkeypatch, capsys, faults):
    from krill.cli.main import main

    src = tmp_path / "bank.json"
    write_json(src, {"general_skills": [], "task_specific_skills": {}, "history": [], "current_cycle": 0})
    out = tmp_path / "official.json"
    write_json(out, {"keep": "me"})
    _FullDisk(monkeypatch, budget=8)
    faults.inject("disk full (ENOSPC)")
    with pytest.raises(SystemExit) as exc:
        main(["bank", "convert", str(src), str(out), "--to", "official"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "No space left on device" in err and "Traceback" not in err
    assert read_json(out) == {"keep": "me"}


def test_append_enospc_is_clear_error(tmp_path, monkeypatch, faults):
    path = tmp_path / "t.jsonl"
    append_jsonl(path, {"a": 1})

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    faults.inject("disk full (ENOSPC)")
    with pytest.raises(KrillError, match="No space left"):
        append_jsonl(path, {"b": 2})


def test_next_write_removes_the_temp_file_a_killed_writer_left(tmp_path):
    from krill.io import STALE_TMP_SECONDS

    path = tmp_path / "bank.json"
    stale = tmp_path / ".bank.json.k1ll3d.tmp"  # what a kill -9 between mkstemp and rename leaves
    live = tmp_path / ".bank.json.wr1t1ng.tmp"  # another process's write still in flight
    other = tmp_path / ".other.json.k1ll3d.tmp"  # a different file's leftover: not this write's business
    for p in (stale, live, other):
        p.write_text("{half")
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    write_json(path, {"ok": 1})
    assert read_json(path) == {"ok": 1}
    assert not stale.exists(), "an idle leftover of this file is removed"
    assert live.exists() and other.exists(), "recent temp files and other files' leftovers stay"
