"""`krill` entry point: global flags, verb registration, and the one-line error policy."""

from __future__ import annotations

import difflib
import os
import sys

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors its own click; older ones use click itself
    from typer._click import exceptions as click
except ImportError:  # pragma: no cover
    from click import exceptions as click  # type: ignore[no-redef]

from krill.cli import common
from krill.errors import KrillError

# The global flags, and whether each takes a value. Any verb accepts them before or after its name
# (`krill --preset tiny sft` = `krill sft --preset tiny`), as the original krill's clap `global = true`.
GLOBAL_FLAGS = {"--config": True, "-c": True, "--set": True, "--preset": True, "--env": True,
                "--env-url": True, "--mock": False, "--debug": False, "--force-config": False}  # fmt: skip


def hoist_global_flags(args: list[str]) -> list[str]:
    """Move global flags that follow the verb to the front, where the app's callback reads them; their
    order is kept, so a flag given twice still lets the later one win."""
    front, rest, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":  # everything after is an argument, never a flag
            rest += args[i:]
            break
        name, has_value = arg.split("=", 1)[0], "=" in arg
        if name in GLOBAL_FLAGS:
            width = 1 if has_value or not GLOBAL_FLAGS[name] else 2
            front += args[i : i + width]
            i += width
            continue
        rest.append(arg)
        i += 1
    return front + rest


# `--help` ends with these (the first example of each verb works on a fresh machine with the tiny preset).
EXAMPLES = {
    "inspect": ["krill inspect --example", "krill inspect data/skill_bank.json --category Heat"],
    "collect": ["krill --preset tiny collect --episodes 8", "krill collect --policy local --episodes 32 --skill-bank data/skill_bank.json"],
    "distill": ["krill distill -t data/trajectories.json -o data/skill_bank.json", "krill distill --teacher llm --set model.teacher.api_base=http://127.0.0.1:8000/v1"],
    "sft": ["krill --preset tiny sft", "krill sft --skill-bank data/skill_bank.json --num-examples 500 --out runs/sft"],
    "rl": ["krill --preset tiny rl", "krill rl --init runs/sft --iterations 20 --set rl.group_size=8"],
    "train": ["krill --preset tiny train --out runs/tiny", "krill --preset quick train --out runs/quick"],
    "ablate": ["krill --preset tiny ablate --out runs/ablate-tiny", "krill ablate --preset quick --out runs/ablate",
               "krill ablate --variants base,sft,skillrl --seeds 3 --out runs/ablate3"],
    "eval": ["krill --preset tiny eval --policy random", "krill eval --model runs/rl --skill-bank runs/rl/bank.json --episodes 60",
             "krill eval --compare runs/eval/before.json runs/eval/after.json"],
    "report": ["krill report runs/tiny"],
    "retrieve": ["krill retrieve 'heat some egg and put it in the fridge' --bank data/skill_bank.json"],
    "config show": ["krill --preset quick config show", "krill config show --set rl.group_size=4"],
    "config explain": ["krill config explain agent.context", "krill config explain rl"],
    "env list": ["krill env list"],
    "env play": ["krill env play alfworld --split valid_seen"],
    "env serve": ["krill env serve --env webshop --port 8765"],
    "env generate": ["krill env generate alfworld --out data/games --seed 1"],
    "bank convert": ["krill bank convert official_bank.json data/skill_bank.json"],
    "bank stats": ["krill bank stats data/skill_bank.json --json"],
    "bank merge": ["krill bank merge a.json b.json --out merged.json"],
    "bank dedup": ["krill bank dedup data/skill_bank.json --out deduped.json --threshold 0.95"],
    "bank diff": ["krill bank diff runs/tiny/banks/cycle_0.json runs/tiny/rl/bank.json"],
    "bank export": ["krill bank export data/skill_bank.json skills/ --to agent-skills"],
    "bank compression": ["krill bank compression --bank data/skill_bank.json --trajectories data/trajectories.json"],
    "export": ["krill export runs/quick runs/quick-export", "krill export runs/quick runs/quick-export --merge"],
    "convert eto": ["krill convert eto eto_alfworld_sft.json data/alfworld_trajectories.json"],
}  # fmt: skip


class _GlobalFlagsAnywhere(TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _switches_without_metavar(self)
        _add_examples(self, ())

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_global_flags(list(args)))


GLOBAL_NOTE = ("Global options, before or after the verb: --config/-c FILE, --set KEY=VALUE (repeatable), --preset "
               "tiny|quick|gpu-small|paper, --env alfworld|webshop, --env-url URL, --mock, --force-config, --debug "
               "(see krill --help).")  # fmt: skip


def _add_examples(command, path: tuple[str, ...]) -> None:
    examples = EXAMPLES.get(" ".join(path))
    if examples:
        command.epilog = "Examples:\n\n" + "\n\n".join(f"  {e}" for e in examples)
    if path and not getattr(command, "commands", None):  # each verb says which global options it takes
        command.epilog = (command.epilog + "\n\n" if command.epilog else "") + GLOBAL_NOTE
    for name, sub in getattr(command, "commands", {}).items():
        _add_examples(sub, (*path, name))


def _switches_without_metavar(command) -> None:
    """--help shows a switch as `--resume`, not `--resume <bool>` (it takes no value)."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    plain_help = command.get_help_option

    def help_option(ctx, _plain=plain_help):
        option = _plain(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _switches_without_metavar(sub)


app = typer.Typer(
    cls=_GlobalFlagsAnywhere,
    name="krill",
    help="SkillRL for real: collect → distill → sft → rl (GRPO + skill evolution) → eval.\n\n"
    "The global options below may also follow the verb (krill sft --preset tiny).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    config: str | None = typer.Option(
        None, "--config", "-c", help="Config file (TOML/YAML, or original krill JSON)."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config value: section.key=value (repeatable)."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="tiny | quick | gpu-small | paper (also $KRILL_PRESET)."
    ),
    env: str | None = typer.Option(None, "--env", help="alfworld | webshop"),
    mock: bool = typer.Option(
        False, "--mock", help="Use the built-in offline simulators (the default here)."
    ),
    env_url: str | None = typer.Option(None, "--env-url", help="Remote env server URL (krill env serve)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    force_config: bool = typer.Option(
        False,
        "--force-config",
        help="Resume a run whose recorded settings differ: accept the change, keep the old record "
        "(config.superseded-N.yaml) and log it in config.history.jsonl. Finished phases are not redone.",
    ),
) -> None:
    common.STATE.config_file = config
    common.STATE.overrides = list(set_)
    common.STATE.preset = preset
    common.STATE.env = env
    common.STATE.mock = mock
    common.STATE.mock_noted = False
    common.STATE.machine_preset, common.STATE.machine_preset_noted = None, False
    common.STATE.tiny_noted = False
    common.STATE.env_url = env_url
    common.STATE.debug = debug or bool(os.environ.get("KRILL_DEBUG"))
    from krill.runrecord import ACCEPT_CHANGED

    ACCEPT_CHANGED.set(force_config)  # read by every resumable verb's drift check
    common.setup_logging(common.STATE.debug)
    common.note_mock_once()


def _register() -> None:
    from krill.cli import (
        ablate,
        bank,
        collect,
        config_cmd,
        convert,
        distill,
        env_cmd,
        eval_cmd,
        export_cmd,
        inspect_cmd,
        report,
        retrieve,
        rl,
        sft,
        train,
    )

    app.command("inspect")(inspect_cmd.inspect)
    app.command("collect")(collect.collect)
    app.command("distill")(distill.distill)
    app.command("sft")(sft.sft)
    app.command("rl")(rl.rl)
    app.command("train")(train.train)
    app.command("ablate")(ablate.ablate)
    app.command("eval")(eval_cmd.eval_)
    app.command("report")(report.report)
    app.command("export")(export_cmd.export)
    app.command("retrieve")(retrieve.retrieve)
    app.add_typer(bank.app, name="bank")
    app.add_typer(env_cmd.app, name="env")
    app.add_typer(convert.app, name="convert")
    app.add_typer(config_cmd.app, name="config")


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors (bad flags, values, files, config) print ONE line to stderr and exit 2
    (traceback with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("KRILL_DEBUG"))
    try:
        code = app(args=args, standalone_mode=False, prog_name="krill")
    except click.NoArgsIsHelpError as exc:  # `krill` alone, `krill bank`: the help, as typer would
        typer.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        _fail(usage_message(exc, args))
    except KrillError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        common.err_console.print("interrupted; re-run the same command to resume")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    # Plain write, not rich: messages quote user text that may contain [markup]. Credentials in any
    # URL the message quotes (an env server's, an API base's) are masked.
    from krill.secrets import mask_url

    sys.stderr.write(f"error: {mask_url(message)}\n")
    sys.exit(code)


def usage_message(exc: click.UsageError, args: list[str]) -> str:
    """A parser error as one line: the command, the problem, the value given, and the closest flag."""
    ctx = exc.ctx
    where = ctx.command_path if ctx is not None else "krill"
    if isinstance(exc, click.NoSuchOption):
        verb = [o for p in ctx.command.params for o in p.opts if o.startswith("-")] if ctx else []
        known = [*GLOBAL_FLAGS, *verb]
        close = difflib.get_close_matches(exc.option_name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (see {where} --help)"
        return f"{where}: no such option {exc.option_name}{hint}"
    message = exc.format_message().rstrip(".")
    param = getattr(exc, "param", None)
    given = (
        _value_given(args, param.opts) if isinstance(exc, click.BadParameter) and param is not None else None
    )
    return f"{where}: {message}" + (f", got {given!r}" if given is not None else "")


def _value_given(args: list[str], opts: list[str]) -> str | None:
    for k, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in opts:
            return value if eq else (args[k + 1] if k + 1 < len(args) else None)
    return None


if __name__ == "__main__":
    main()
