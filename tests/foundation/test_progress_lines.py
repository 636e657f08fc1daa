"""Progress without a terminal (nohup, Slurm, a redirected stderr): periodic plain lines a log keeps."""

from __future__ import annotations

import sys

from krill import progress


def test_plain_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("KRILL_PROGRESS", raising=False)
    monkeypatch.setenv("KRILL_PROGRESS_INTERVAL", "0")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    with progress.progress_bar("eval", 4) as bar:
        bar.status("succ 0.25")
        bar.advance()
        bar.advance()
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("eval: 1/4 (25%), ") and "ETA" in lines[0] and lines[0].endswith("succ 0.25")
    assert lines[1].startswith("eval: 2/4 (50%), ")
    assert lines[-1].startswith("eval: 2/4")  # the last line when the task ends


def test_a_short_task_stays_quiet_and_the_interval_is_respected(monkeypatch, capsys):
    monkeypatch.setenv("KRILL_PROGRESS_INTERVAL", "3600")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    with progress.progress_bar("collect", 100) as bar:
        for _ in range(100):
            bar.advance()
    assert capsys.readouterr().err == ""
