"""`krill env serve|play|list|generate`: argument handling, the bind policy, piped play."""

from __future__ import annotations

import io

import pytest

from krill.cli.main import main


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
    monkeypatch.setattr("krill.envs.server.serve", lambda *a, **kw: calls.append((a, kw)))
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
