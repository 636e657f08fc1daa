"""State shared by CLI verbs: the global flags and the one way to build the config from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from krill.agent.collect import DEFAULT_OUT as DEFAULT_COLLECT_OUT
from krill.categories import register_categories
from krill.config import KrillConfig, load_config

# Where the verbs read and write by default (the original krill's paths): collect → distill → sft → rl.
DEFAULT_TRAJECTORIES = DEFAULT_COLLECT_OUT
DEFAULT_BANK = "data/skill_bank.json"
DEFAULT_SFT = "runs/sft"
DEFAULT_RL = "runs/rl"

RESUME_OPTION = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out.")


def bank_option(help: str):
    """`--skill-bank/-b`, defaulting to where `krill distill` writes."""
    return typer.Option(DEFAULT_BANK, "--skill-bank", "-b", help=help)


console = Console()
err_console = Console(stderr=True)


@dataclass
class GlobalOptions:
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    preset: str | None = None
    debug: bool = False
    env: str | None = None
    mock: bool = False
    env_url: str | None = None
    mock_noted: bool = False  # the --mock note is printed once per invocation
    machine_preset: str | None = None  # the preset chosen for this machine (no --preset, no config file)
    machine_preset_noted: bool = False
    tiny_noted: bool = False


STATE = GlobalOptions()


def setup_logging(debug: bool = False) -> None:
    """krill's own log lines (evolution cycles, resumes, retries) on stderr; library noise off."""
    import logging
    import warnings

    from rich.logging import RichHandler

    logger = logging.getLogger("krill")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=err_console, show_path=False, show_time=False))
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    # transformers' per-load weight bars and deprecation notices are not actionable for a krill user;
    # env vars (read when transformers is imported) keep `krill inspect` from importing it here.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def machine_preset() -> str | None:
    """On a machine without a GPU, heavy verbs default to the `quick` sizes (`announce_machine_preset`)."""
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return "quick"


def announce_machine_preset(cfg: KrillConfig) -> None:
    """Say once, on stderr, that the machine chose the preset (called when the run really starts)."""
    if STATE.machine_preset and not STATE.machine_preset_noted:
        STATE.machine_preset_noted = True
        err_console.print(
            f"[dim]no GPU found: using the `{cfg.preset}` preset's sizes (set --preset or KRILL_PRESET)[/dim]"
        )


def note_random_model(cfg: KrillConfig) -> None:
    """Verbs that run the policy say once when it is the `tiny` preset's random model: a smoke test."""
    if cfg.model.policy.model == "tiny" and not STATE.tiny_noted:
        STATE.tiny_noted = True
        err_console.print(
            "[dim]model.policy.model=tiny: a randomly initialised tiny model (the `tiny` preset's): this run "
            "checks the pipeline end to end; its success rates say nothing about learning[/dim]"
        )


def announce_run(cfg: KrillConfig) -> None:
    """What a run says before it starts (after its inputs are checked): the machine's preset, a random model."""
    announce_machine_preset(cfg)
    note_random_model(cfg)


def get_config(
    extra_overrides: list[str] | None = None,
    preset: str | None = None,
    *,
    machine_default: bool = False,
    announce: bool = True,
    config_file: str | Path | None = None,
) -> KrillConfig:
    """The effective config for this invocation (global flags + a verb's own overrides).

    With `machine_default`, a run given no preset and no config file uses the preset that fits this
    machine (`quick` on CPU), so the original krill's verbatim commands finish in minutes; it says so
    now, or (`announce=False`) when the verb calls `announce_machine_preset` after checking its inputs.
    `config_file` stands in for `--config` when the user gave none (`eval --model RUN`: the run's own).
    """
    config_file = STATE.config_file or config_file
    chosen = preset or STATE.preset or os.environ.get("KRILL_PRESET")
    if not chosen and machine_default and not config_file:
        preset = STATE.machine_preset = machine_preset()
    extra: dict[str, Any] = {}
    env: dict[str, Any] = {}
    if STATE.env:
        env["name"] = STATE.env
    if STATE.env_url:
        env["url"] = STATE.env_url
    if env:
        extra["env"] = env
    cfg = load_config(
        config_file,
        overrides=[*STATE.overrides, *(extra_overrides or [])],
        preset=preset or STATE.preset,
        extra=extra,
    )
    register_categories(cfg.env.categories)  # a user env's own categories, for this process
    if announce:
        announce_machine_preset(cfg)
    return cfg


def note_mock_once() -> None:
    """`--mock` (from the original krill) selects the built-in offline simulators: say what they are."""
    if STATE.mock and not STATE.mock_noted:
        STATE.mock_noted = True
        err_console.print(
            "[dim]--mock: using krill's built-in offline environments, real simulators (generated ALFWorld "
            "games on the real TextWorld engine, the WebShop simulator): observations depend on your "
            "actions, nothing is replayed.[/dim]"
        )


def print_phase(name: str, info: dict[str, Any]) -> None:
    """A resumable run's phase events (`krill train`, `krill ablate`): a rule when one starts, its
    headline numbers when it ends, a dim line when it was already complete."""
    if info.get("skipped"):
        console.print(f"[dim]✓ {name}: already complete, skipped[/dim]")
    elif info.get("started"):
        console.rule(f"[bold]{name}")
    elif info.get("finished"):
        shown = {k: v for k, v in info.items() if k != "finished" and not isinstance(v, dict | list)}
        console.print(f"✓ {name} " + " ".join(f"{k}={v}" for k, v in shown.items()))
