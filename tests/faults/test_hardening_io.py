"""Hardening of krill's file I/O found by an adversarial probe: special, unreadable, looping and
oversized input files; output paths that cannot be written; the mode of written files; malformed
eval results; mathtext in report labels. Every bad input gives one `error:` line naming the file."""

from __future__ import annotations

import json
import os
import signal
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_bad_inputs import GOOD_BANK, GOOD_TRAJ, assert_clean_error, run_cli

import krill.io
from krill.errors import KrillError
from krill.io import append_jsonl, read_json, write_json

pytestmark = pytest.mark.faults


class _Hung(BaseException):
    """Raised by the alarm: a BaseException so no `except Exception` in krill swallows it."""


@contextmanager
def deadline(seconds: int = 10):
    """Fail (instead of hanging the suite) when the body blocks, e.g. in open() on a FIFO."""

    def on_alarm(signum, frame):
        raise _Hung(f"still blocked after {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _good(tmp_path: Path, name: str, obj) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def _eval_doc(results) -> dict:
    return {"format": "krill-eval/1", "env": "alfworld", "split": "valid_unseen", "policy": "local",
            "results": results}  # fmt: skip


def _stats(rate: float = 0.5) -> dict:
    return {"episodes": 4, "successes": 2, "success_rate": rate, "ci_low": 0.15, "ci_high": 0.85,
            "mean_score": rate, "mean_steps": 3.0, "invalid_action_rate": 0.0, "mean_prompt_tokens": 10.0,
            "skills_per_step": 1.0}  # fmt: skip


def read_commands(p: Path, tmp_path: Path) -> dict[str, list[str]]:
    """One command per kind of input file krill reads, each reading `p`."""
    good_eval = _good(tmp_path, "good_eval.json", _eval_doc({"all": _stats()}))
    return {
        "bank": ["inspect", str(p)],
        "trajectories": ["distill", "--trajectories", str(p), "--out", str(tmp_path / "out_bank.json")],
        "config": ["--config", str(p), "config", "show"],
        "eval": ["eval", "--compare", str(p), str(good_eval)],
    }


def check_every_reader(p: Path, tmp_path: Path, capsys, monkeypatch, message: str) -> None:
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    for kind, args in read_commands(p, tmp_path).items():
        with deadline():
            code, err = run_cli(args, capsys)
        assert_clean_error(code, err, p)
        assert message in err, f"{kind}: {err.strip()}"


# -- 1. input files that cannot be read -----------------------------------------------------------
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_unreadable_input_file_chmod_000(tmp_path, capsys, monkeypatch, faults):
    p = _good(tmp_path, "bank.json", GOOD_BANK)
    p.chmod(0)
    check_every_reader(p, tmp_path, capsys, monkeypatch, "permission denied")
    faults.inject("bad input file", 4)


def test_unreadable_input_file_permission_error(tmp_path, capsys, monkeypatch, faults):
    """As root chmod 000 does not stop a read: the kernel's EACCES is simulated on every open path."""
    p = _good(tmp_path, "input.json", GOOD_BANK)
    import builtins
    import io

    def denying(real):
        def opener(file, *a, **kw):
            if isinstance(file, str | os.PathLike) and os.fspath(file) == str(p):
                raise PermissionError(13, "Permission denied", str(p))
            return real(file, *a, **kw)

        return opener

    for mod, name in ((os, "open"), (io, "open"), (builtins, "open")):
        monkeypatch.setattr(mod, name, denying(getattr(mod, name)))
    check_every_reader(p, tmp_path, capsys, monkeypatch, "permission denied")
    faults.inject("bad input file", 4)


def test_fifo_input_is_refused_without_blocking(tmp_path, capsys, monkeypatch, faults):
    p = tmp_path / "input.json"
    os.mkfifo(p)
    check_every_reader(p, tmp_path, capsys, monkeypatch, "not a regular file (a FIFO)")
    faults.inject("bad input file", 4)


def test_dev_zero_input_is_refused_without_reading(tmp_path, capsys, monkeypatch, faults):
    """`/dev/zero` never ends: reading it fills memory. Named directly and through a symlink."""
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    check_every_reader(link, tmp_path, capsys, monkeypatch, "not a regular file (a character device)")
    code, err = run_cli(["inspect", "/dev/zero"], capsys)
    assert_clean_error(code, err, Path("/dev/zero"))
    assert "not a regular file (a character device)" in err
    faults.inject("bad input file", 5)


def test_symlink_loop_is_named_as_such(tmp_path, capsys, monkeypatch, faults):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.symlink_to(b)
    b.symlink_to(a)
    check_every_reader(a, tmp_path, capsys, monkeypatch, "symlink loop")
    faults.inject("bad input file", 4)


def test_missing_input_file_is_still_file_not_found(tmp_path, capsys, monkeypatch):
    check_every_reader(tmp_path / "nope.json", tmp_path, capsys, monkeypatch, "file not found")


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)  # sparse: no disk used, nothing for the test to write
    return path


def test_oversized_bank_config_and_eval_files_hit_the_512_mib_cap(tmp_path, capsys, monkeypatch, faults):
    assert krill.io.MAX_INPUT_BYTES == 512 * 2**20
    p = _sparse(tmp_path / "huge.json", krill.io.MAX_INPUT_BYTES + 1)
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    cmds = read_commands(p, tmp_path)
    for kind in ("bank", "config", "eval"):
        with deadline():
            code, err = run_cli(cmds[kind], capsys)
        assert_clean_error(code, err, p)
        assert "larger than the 512 MiB limit" in err, f"{kind}: {err.strip()}"
    faults.inject("bad input file", 3)


def test_oversized_trajectory_file_hits_the_2_gib_cap(tmp_path, capsys, monkeypatch, faults):
    assert krill.io.MAX_TRAJECTORY_BYTES == 2 * 2**30
    p = _sparse(tmp_path / "huge.jsonl", krill.io.MAX_TRAJECTORY_BYTES + 1)
    monkeypatch.setenv("KRILL_EMBEDDER", "hash")
    with deadline():
        code, err = run_cli(read_commands(p, tmp_path)["trajectories"], capsys)
    assert_clean_error(code, err, p)
    assert "larger than the 2 GiB limit" in err, err
    faults.inject("bad input file")


def test_trajectory_cap_is_not_the_bank_cap(tmp_path):
    """A trajectory file between the two caps is read (checked on a small scale with `max_bytes`)."""
    from krill.formats.trajectories import load_trajectories

    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps(GOOD_TRAJ) + "\n")
    assert len(load_trajectories(p)) == 1
    with pytest.raises(
        KrillError, match=r"t\.jsonl: file too large \(\d+ bytes\), larger than the 10 B limit"
    ):
        krill.io.read_text(p, max_bytes=10)


# -- 2. output paths that cannot be written -------------------------------------------------------
def test_write_under_a_regular_file_is_one_line_error(tmp_path, faults):
    blocker = tmp_path / "blocker"
    blocker.write_text("i am a file")
    for target in (blocker / "out.json", blocker / "sub" / "dir" / "out.json"):
        with pytest.raises(KrillError, match=r"blocker is a file, not a folder") as exc:
            write_json(target, {"a": 1})
        assert str(target) in str(exc.value) and "\n" not in str(exc.value)
        with pytest.raises(KrillError, match=r"blocker is a file, not a folder"):
            append_jsonl(target, {"a": 1})
    assert blocker.read_text() == "i am a file"
    faults.inject("bad output path", 4)


def test_write_under_a_regular_file_via_cli(tmp_path, capsys, faults):
    src = _good(tmp_path, "bank.json", GOOD_BANK)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker / "official.json"
    code, err = run_cli(["bank", "convert", str(src), str(out), "--to", "official"], capsys)
    assert_clean_error(code, err, out)
    assert "is a file, not a folder" in err
    faults.inject("bad output path")


def test_write_where_the_folder_cannot_be_created(tmp_path, faults):
    with pytest.raises(
        KrillError, match=r"^/proc/krill-nope/x/out\.json: cannot create folder /proc/krill-nope"
    ):
        write_json("/proc/krill-nope/x/out.json", {"a": 1})
    with pytest.raises(KrillError, match=r"^/proc/out\.json: cannot write file"):
        write_json("/proc/out.json", {"a": 1})  # the folder exists; the temp file cannot be made there
    faults.inject("bad output path", 2)


def test_write_with_a_file_name_too_long(tmp_path, faults):
    target = tmp_path / ("x" * 300 + ".json")
    with pytest.raises(KrillError, match=r"cannot write file \(File name too long\)") as exc:
        write_json(target, {"a": 1})
    assert "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []
    faults.inject("bad output path")


def test_write_a_long_name_the_filesystem_accepts(tmp_path):
    """A 250-byte name is legal; the temp file beside it (name + random part) must still fit."""
    target = tmp_path / ("y" * 245 + ".json")
    write_json(target, {"a": 1})
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


# -- 3. the mode of written files ----------------------------------------------------------------
@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_new_files_get_the_mode_open_would_give(tmp_path, mask):
    with umask(mask):
        write_json(tmp_path / "new.json", {"a": 1})
        append_jsonl(tmp_path / "new.jsonl", {"a": 1})
    for name in ("new.json", "new.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


def test_replacing_a_file_keeps_its_mode(tmp_path):
    p = tmp_path / "adapter.json"
    write_json(p, {"v": 1})
    p.chmod(0o640)
    with umask(0o077):
        write_json(p, {"v": 2})
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert read_json(p) == {"v": 2}


# -- 4. eval result files with a malformed `results` ----------------------------------------------
BAD_RESULTS = {
    "results_is_list": ([1, 2], "results: expected an object"),
    "results_is_null": (None, "results: expected an object"),
    "category_is_string": ({"Heat": "good", "all": _stats()}, "results.Heat: expected an object"),
    "missing_success_rate": (
        {"all": {k: v for k, v in _stats().items() if k != "success_rate"}},
        "results.all.success_rate: missing field",
    ),
    "rate_is_string": ({"all": {**_stats(), "success_rate": "high"}}, "results.all.success_rate: expected"),
    "ci_is_null": ({"all": {**_stats(), "ci_low": None}}, "results.all.ci_low: expected"),
    "episodes_is_list": ({"all": {**_stats(), "episodes": [4]}}, "results.all.episodes: expected"),
    "rate_is_bool": ({"all": {**_stats(), "success_rate": True}}, "results.all.success_rate: expected"),
}


@pytest.mark.parametrize("name", sorted(BAD_RESULTS))
def test_eval_compare_with_malformed_results(name, tmp_path, capsys, faults):
    results, message = BAD_RESULTS[name]
    bad = _good(tmp_path, f"{name}.json", _eval_doc(results))
    good = _good(tmp_path, "good.json", _eval_doc({"Heat": _stats(), "all": _stats()}))
    for args in (["eval", "--compare", str(good), str(bad)], ["eval", "--compare", str(bad), str(good)]):
        code, err = run_cli(args, capsys)
        assert_clean_error(code, err, bad)
        assert message in err, err.strip()
    faults.inject("bad input file", 2)


def test_eval_compare_good_files_still_work(tmp_path, capsys):
    a = _good(tmp_path, "a.json", _eval_doc({"Heat": _stats(0.25), "all": _stats(0.25)}))
    b = _good(tmp_path, "b.json", _eval_doc({"Heat": _stats(0.75), "all": _stats(0.75)}))
    code, _ = run_cli(["eval", "--compare", str(a), str(b)], capsys)
    assert code == 0


# -- 5. mathtext in report labels -----------------------------------------------------------------
MATHTEXT = "$x^{$"


def test_report_with_mathtext_in_category_and_metric_names(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "config.yaml").parent.mkdir(parents=True)
    (run / "config.yaml").write_text("preset: tiny\n")  # what marks a run folder
    for it in range(3):
        append_jsonl(run / "rl" / "metrics.jsonl", {"iteration": it, "rollout/reward": it,
                                                     f"rollout/reward/{MATHTEXT}": it / 2})  # fmt: skip
    results = {MATHTEXT: _stats(), r"a\$b$c": _stats(), "all": _stats()}
    write_json(run / "eval" / "before.json", _eval_doc(results))
    write_json(run / "eval" / "after.json", _eval_doc(results))
    code, err = run_cli(["report", str(run)], capsys)
    assert code == 0, err
    for png in ("reward.png", "eval.png"):
        assert (run / "report" / png).stat().st_size > 2000, png
    assert "$x^{$" in (run / "report" / "index.html").read_text()


def test_report_labels_are_plain_text():
    """Escaped labels render literally: no mathtext, every `$` and backslash shown as written."""
    import matplotlib.pyplot as plt

    from krill.evaluate.report import _plain

    fig, ax = plt.subplots()
    labels = [ax.text(0, 0, _plain(s)) for s in (MATHTEXT, r"a\$b$c", "$5 per $10")]
    fig.canvas.draw()
    assert [t._preprocess_math(t.get_text()) for t in labels] == [
        (MATHTEXT, False), (r"a\$b$c", False), ("$5 per $10", False),
    ]  # fmt: skip
    plt.close(fig)
