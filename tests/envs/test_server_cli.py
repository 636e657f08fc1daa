"""`krill env serve|play|list|generate`: argument handling, the bind policy, piped play."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time

import pytest
from counter_env import real_env_or_skip

from krill.cli.main import main
from krill.config import load_config
from krill.envs.base import make_env
from krill.envs.remote import EnvUnavailable, RemoteEnv
from krill.errors import KrillError


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_serve_refuses_public_bind_without_token(capsys, monkeypatch):
    monkeypatch.delenv("KRILL_ENV_TOKEN", raising=False)
    code, _, err = _run(["env", "serve", "--env", "counter", "--host", "0.0.0.0"], capsys)
    assert code == 2
    assert err.strip() == (
        "error: refusing to bind the env server to non-loopback host '0.0.0.0' without a token; "
        "pass --token or set $KRILL_ENV_TOKEN (or bind 127.0.0.1)"
    )


def test_serve_takes_token_from_environment(capsys, monkeypatch):
    calls = []
    # a stand-in server that only records how it was called, then says it is ready as serve() does
    monkeypatch.setattr("krill.envs.server.serve", lambda *a, **kw: (calls.append((a, kw)), kw["on_ready"]()))
    monkeypatch.setenv("KRILL_ENV_TOKEN", "from-env")
    code, _, err = _run(["env", "serve", "--env", "counter", "--host", "0.0.0.0", "--port", "9999"], capsys)
    assert code == 0, err
    (args, kw) = calls[0]
    assert args[:2] == ("counter", "train") and kw["token"] == "from-env" and kw["port"] == 9999
    assert "token required" in err


def test_play_with_piped_stdin(capsys, monkeypatch):
    # t1 needs 3: inc, "2" (dec, chosen by number), hint (no step), inc ×3, an invalid action, submit
    monkeypatch.setattr("sys.stdin", io.StringIO("inc\n2\nhint\ninc\ninc\ninc\nfly\nsubmit\n"))
    code, out, err = _run(["env", "play", "counter", "--task-id", "t1"], capsys)
    assert code == 0, err
    assert "task t1 [Pick]: make the counter show 3" in out
    assert "actions: 1) inc; 2) dec; 3) look; 4) submit" in out
    assert "The counter shows -1." not in out and "The counter shows 0." in out  # "2" was dec after inc
    assert "expert: inc" in out
    assert "(that action is not admissible here)" in out
    assert "You win!" in out and "won after 7 steps, total reward 10" in out


def test_play_quit_and_end_of_input(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("inc\nquit\n"))
    code, out, _ = _run(["env", "play", "counter", "--task-id", "t0"], capsys)
    assert code == 0 and "The counter shows 1." in out and "quit after 1 steps" in out
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, _ = _run(["env", "play", "counter"], capsys)
    assert code == 0 and "quit after 0 steps" in out


def test_list_and_generate_errors(capsys):
    code, out, _ = _run(["env", "list"], capsys)
    assert code == 0 and "remote" in out and "counter" in out
    code, _, err = _run(["env", "generate", "webshop", "--out", "x"], capsys)
    assert code == 2 and "only alfworld games are generated, not 'webshop'" in err
    code, _, err = _run(["env", "play", "nope"], capsys)
    assert code == 2 and "unknown environment 'nope'" in err


@pytest.mark.parametrize(
    "bad", [["env", "serve", "--port", "70000"], ["env", "serve", "--max-sessions", "0"]]
)
def test_serve_rejects_bad_numbers(bad, capsys):
    code, _, err = _run(bad, capsys)
    assert code == 2 and "Invalid value" in err


def test_generate_then_play_alfworld_through_piped_stdin(tmp_path, capsys, monkeypatch):
    real_env_or_skip("alfworld")
    games = tmp_path / "games"
    code, out, err = _run(["env", "generate", "alfworld", "--out", str(games), "--per-split", "2"], capsys)
    assert code == 0, err
    assert "valid_unseen" in out and (games / "manifest.json").exists()
    # the expert's moves, found on a local env over the same games, typed in by "the player"
    cfg = load_config(None, overrides=[f"env.alfworld.games_dir={games}"])
    env = make_env("alfworld", "valid_unseen", cfg=cfg)
    task = env.task_ids()[0]
    env.reset(task)
    moves, done = [], False
    while not done:
        moves.append(env.expert_action())
        _, _, done, info = env.step(moves[-1])
    assert info["won"]
    monkeypatch.setattr("sys.stdin", io.StringIO("look around wildly\n" + "\n".join(moves) + "\n"))
    argv = ["--set", f"env.alfworld.games_dir={games}", "env", "play", "alfworld"]
    code, out, err = _run([*argv, "--split", "valid_unseen", "--task-id", task], capsys)
    assert code == 0, err
    assert f"task {task} [" in out and "(that action is not admissible here)" in out
    assert f"won after {len(moves) + 1} steps, total reward 10" in out


def test_krill_env_serve_subprocess_with_token(tmp_path):
    real_env_or_skip("webshop")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "krill",
        "--preset",
        "tiny",
        "--set",
        "env.webshop.max_steps=15",
        "env",
        "serve",
        "--env",
        "webshop",
    ]
    cmd += ["--split", "test", "--port", str(port)]
    env_vars = {**os.environ, "KRILL_ENV_TOKEN": "t0ken"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env_vars, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            try:
                env = RemoteEnv(url, token="t0ken", retries=0)
                break
            except EnvUnavailable:
                assert proc.poll() is None and time.monotonic() < deadline, "krill env serve did not start"
                time.sleep(0.3)
        with pytest.raises(KrillError, match="HTTP 401"):
            RemoteEnv(url, token="wrong")
        env.reset(env.task_ids()[0])
        done = False
        while not done:
            _, reward, done, info = env.step(env.expert_action())
        assert info["won"] and reward == 10.0 and info["score"] == 1.0
        env.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"serving webshop (test) on http://127.0.0.1:{port}; token required" in out
