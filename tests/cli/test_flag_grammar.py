"""One flag grammar: every verb takes every global flag, before or after its name; every parser or
config mistake is ONE line on stderr, `error: ...`, exit code 2, with the value given and the closest
flag or key when there is one."""

from __future__ import annotations

import pytest

from krill.cli import common
from krill.cli.main import app, main

GLOBALS = ["--config", "my.yaml", "--set", "rl.group_size=2", "--preset", "tiny", "--env", "webshop",
           "--env-url", "http://127.0.0.1:9", "--mock", "--debug"]  # fmt: skip
EXPECTED = {"config_file": "my.yaml", "overrides": ["rl.group_size=2"], "preset": "tiny", "env": "webshop",
            "env_url": "http://127.0.0.1:9", "mock": True, "debug": True}  # fmt: skip


def _verbs() -> list[tuple[str, ...]]:
    """Every leaf command of the CLI: ('sft',), ('bank', 'dedup'), ('env', 'serve'), ..."""
    import typer.main

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if not subs:
            return [path]
        return [p for name, sub in sorted(subs.items()) for p in walk(sub, (*path, name))]

    return walk(typer.main.get_command(app), ())


def _run(args: list[str], capsys) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def test_the_walk_finds_every_verb():
    verbs = _verbs()
    assert len(verbs) >= 20 and ("sft",) in verbs and ("bank", "dedup") in verbs and ("env", "serve") in verbs


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("verb", _verbs(), ids=" ".join)
def test_every_verb_takes_every_global_flag_before_and_after(verb, where, capsys):
    args = [*GLOBALS, *verb, "--help"] if where == "before" else [*verb, *GLOBALS, "--help"]
    code, err = _run(args, capsys)
    assert code == 0, err
    assert {k: getattr(common.STATE, k) for k in EXPECTED} == EXPECTED


def test_a_flag_after_the_verb_wins_over_the_same_flag_before(capsys):
    code, err = _run(["--preset", "paper", "config", "show", "--preset", "tiny", "--help"], capsys)
    assert code == 0 and common.STATE.preset == "tiny"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trian"], "error: krill: No such command 'trian'. Did you mean 'train'?"),
        (["sft", "--presetx", "tiny"], "error: krill sft: no such option --presetx; did you mean --preset?"),
        (["collect", "--episods", "3"], "error: krill collect: no such option --episods; did you mean --episodes?"),
        (["collect", "--episodes", "abc"], "error: krill collect: Invalid value for '--episodes' / '-n': "
         "Input should be a valid integer, unable to parse string as an integer, got 'abc'"),
        (["--set", "rl.temprature=1", "config", "show"],
         "error: config: rl.temprature: unknown key; did you mean rl.temperature?"),
        (["--set", "rl.group_size=abc", "config", "show"],
         "error: config: rl.group_size: Input should be a valid integer, unable to parse string as an integer, "
         "got 'abc'"),
        (["--set", "rl.group_size=3", "config", "show"],
         "error: config: rl: rl.batch_size (64) must be a multiple of rl.group_size (3): an iteration runs "
         "batch_size / group_size tasks, G rollouts each"),
    ],
)  # fmt: skip
def test_every_mistake_is_one_line_and_exit_2(args, message, capsys, monkeypatch):
    monkeypatch.delenv("KRILL_PRESET", raising=False)
    code, err = _run(args, capsys)
    assert (code, err) == (2, message + "\n")


def test_a_missing_argument_names_the_option(capsys):
    code, err = _run(["eval", "--split"], capsys)
    assert (
        code == 2
        and err.count("\n") == 1
        and err.startswith("error: ")
        and "'--split' requires an argument" in err
    )


@pytest.mark.parametrize("verb", _verbs(), ids=" ".join)
def test_every_verb_help_has_examples_and_every_option_says_what_it_does(verb, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, _ = _run([*verb, "--help"], capsys)
    import typer.main

    cmd = typer.main.get_command(app)
    for name in verb:
        cmd = cmd.commands[name]
    assert code == 0 and "Examples:" in (cmd.epilog or ""), verb
    # and it says which global options it takes (`krill collect --help` did not say --set works there)
    assert "--set KEY=VALUE" in cmd.epilog and "--force-config" in cmd.epilog, verb
    for param in cmd.params:
        assert param.help if param.param_type_name == "option" else True, (verb, param.opts)


def test_every_config_key_is_documented():
    from krill.config_keys import explain

    bare = [key for key, _, description in explain() if not description.strip()]
    assert not bare, bare
