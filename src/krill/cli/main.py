"""`krill` entry point: global flags, verb registration, and the one-line error policy."""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from krill.cli import common
from krill.errors import KrillError

# The global flags, and whether each takes a value. Any verb accepts them before or after its name
# (`krill --preset tiny sft` = `krill sft --preset tiny`), as the original krill's clap `global = true`.
GLOBAL_FLAGS = {"--config": True, "-c": True, "--set": True, "--preset": True, "--env": True,
                "--env-url": True, "--mock": False, "--debug": False}  # fmt: skip


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


class _GlobalFlagsAnywhere(TyperGroup):
    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_global_flags(list(args)))


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
    preset: str | None = typer.Option(None, "--preset", help="tiny | quick | paper (also $KRILL_PRESET)."),
    env: str | None = typer.Option(None, "--env", help="alfworld | webshop"),
    mock: bool = typer.Option(
        False, "--mock", help="Use the built-in offline simulators (the default here)."
    ),
    env_url: str | None = typer.Option(None, "--env-url", help="Remote env server URL (krill env serve)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    common.STATE.config_file = config
    common.STATE.overrides = list(set_)
    common.STATE.preset = preset
    common.STATE.env = env
    common.STATE.mock = mock
    common.STATE.mock_noted = False
    common.STATE.env_url = env_url
    common.STATE.debug = debug or bool(os.environ.get("KRILL_DEBUG"))
    common.setup_logging(common.STATE.debug)
    common.note_mock_once()


def _register() -> None:
    from krill.cli import (
        bank,
        collect,
        config_cmd,
        convert,
        distill,
        env_cmd,
        eval_cmd,
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
    app.command("eval")(eval_cmd.eval_)
    app.command("report")(report.report)
    app.command("retrieve")(retrieve.retrieve)
    app.add_typer(bank.app, name="bank")
    app.add_typer(env_cmd.app, name="env")
    app.add_typer(convert.app, name="convert")
    app.add_typer(config_cmd.app, name="config")


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one line to stderr and exit 2 (traceback with --debug)."""
    debug = "--debug" in (argv if argv is not None else sys.argv) or bool(os.environ.get("KRILL_DEBUG"))
    try:
        app(args=argv, standalone_mode=True)
    except KrillError as exc:
        if debug:
            raise
        # Plain write, not rich: messages quote user text that may contain [markup].
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        common.err_console.print("interrupted; re-run the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
