"""`krill env`: list, generate games, serve over HTTP, play in the terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import typer

from krill.cli.common import console, err_console, get_config
from krill.errors import KrillError

app = typer.Typer(
    help="Environments: list, generate games, serve over HTTP, play in the terminal.", no_args_is_help=True
)

QUIT = {"quit", "exit", "q"}


@app.command("list")
def list_envs() -> None:
    """The registered environments (built-in and any user env imported by a plugin)."""
    from rich.table import Table

    from krill.envs.base import ENVS, _import_builtin_envs

    _import_builtin_envs()
    table = Table("env", "description")
    for name in sorted(ENVS):
        table.add_row(name, _describe_env(name, ENVS[name]))
    console.print(table)


def _describe_env(name: str, factory: Any) -> str:
    """First docstring line of the env's package (krill.envs.<name>) or of its module."""
    module = getattr(factory, "__module__", "") or ""
    if module.startswith(f"krill.envs.{name}."):
        module = f"krill.envs.{name}"
    doc = (getattr(sys.modules.get(module), "__doc__", None) or factory.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


@app.command("serve")
def serve(
    split: str = typer.Option("train", "--split", help="Default split (a client may ask for another)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address; non-loopback needs a token."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="TCP port (0: any free one)."),
    token: str | None = typer.Option(
        None,
        "--token",
        help="Bearer token clients must send; prefer $KRILL_ENV_TOKEN (arguments show in ps).",
    ),
    max_sessions: int = typer.Option(64, "--max-sessions", min=1, help="Concurrent sessions (LRU evicted)."),
    max_body: int = typer.Option(64_000, "--max-body", min=256, help="Request size limit in bytes."),
    client_id_sessions: bool = typer.Option(
        False,
        "--client-id-sessions",
        help="Address sessions by the client's X-Client-Id (the Rust krill protocol) instead of the "
        "unguessable handle /reset returns: anyone who knows an id can use its session.",
    ),
) -> None:
    """Serve an environment over HTTP (the krill protocol: POST /reset, POST /step, one session per handle)."""
    from krill.envs.server import serve as serve_env

    cfg = get_config()
    token = token or os.environ.get(cfg.env.token_env) or None
    name = cfg.env.name

    def ready() -> None:
        where = f"serving {name} ({split}) on http://{host}:{port}; token {'required' if token else 'off'}"
        err_console.print(where, markup=False, highlight=False)

    serve_env(
        name,
        split,
        cfg,
        host=host,
        port=port,
        token=token,
        max_sessions=max_sessions,
        max_body=max_body,
        session_handles=not client_id_sessions,
        on_ready=ready,
    )


@app.command("generate")
def generate(
    env: str = typer.Argument(..., help="alfworld (WebShop's catalogue is built from env.webshop settings)."),
    out: str = typer.Option(..., "--out", "-o", help="Folder for the generated games."),
    per_split: int = typer.Option(10, "--per-split", min=1, help="Games per split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated game set."),
) -> None:
    """Generate ALFWorld games from the floor plans shipped with the alfworld package."""
    if env != "alfworld":
        raise KrillError(f"only alfworld games are generated, not {env!r}")
    from krill.envs.alfworld.generate import generate_games

    manifest = generate_games(out, per_split, seed)
    from rich.table import Table

    table = Table("split", "games", "task categories", title=f"ALFWorld games in {out} (seed {seed})")
    for split, games in manifest.get("splits", {}).items():
        cats = sorted({str(g.get("category", g.get("task_type", "?"))) for g in games})
        table.add_row(split, str(len(games)), f"{len(cats)}: {', '.join(cats)}")
    console.print(table)


@app.command("play")
def play(
    env: str | None = typer.Argument(None, help="alfworld | webshop (default: env.name)."),
    task_id: str | None = typer.Option(None, "--task-id", help="Task to play (default: the split's first)."),
    split: str = typer.Option("train", "--split", help="Split to pick the task from."),
) -> None:
    """Play one task in the terminal: type an action or its number; 'hint' asks the expert, 'quit' exits."""
    from krill.envs.base import make_env

    cfg = get_config()
    environment = make_env(env or cfg.env.name, split, cfg=cfg)
    try:
        result = play_episode(environment, task_id, _stdin_lines())
    finally:
        environment.close()
    _say(f"\n{result['outcome']} after {result['steps']} steps, total reward {result['reward']:g}")


def _stdin_lines() -> Iterator[str]:
    while True:
        sys.stdout.write("> ")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            return
        yield line.strip()


def _say(text: str) -> None:
    # markup off: observations contain brackets ("[Buy Now]") that rich would eat
    console.print(text, markup=False, highlight=False)


def play_episode(env: Any, task_id: str | None, lines: Iterator[str]) -> dict[str, Any]:
    """The interactive loop over any Env, reading actions from `lines`; returns the outcome."""
    obs, info = env.reset(task_id)
    _say(f"task {info.get('task_id')} [{info.get('task_category')}]: {info.get('task_description')}")
    steps, total, done, won = 0, 0.0, False, False
    while not done:
        _say(f"\n{obs}")
        actions = list(info.get("admissible_actions", []))
        _say("actions: " + "; ".join(f"{i}) {a}" for i, a in enumerate(actions, 1)))
        line = _next_action(lines, env, actions)
        if line is None:
            return {"outcome": "quit", "steps": steps, "reward": total, "won": False}
        obs, reward, done, info = env.step(line)
        steps, total, won = steps + 1, total + reward, bool(info.get("won"))
        if not info.get("valid", True):
            _say("(that action is not admissible here)")
    _say(f"\n{obs}")
    return {"outcome": "won" if won else "lost", "steps": steps, "reward": total, "won": won}


def _next_action(lines: Iterator[str], env: Any, actions: list[str]) -> str | None:
    for line in lines:
        if line.lower() in QUIT:
            return None
        if line.lower() == "hint":
            _say(f"expert: {env.expert_action()}")
            continue
        if line.isdigit() and 1 <= int(line) <= len(actions):
            return actions[int(line) - 1]
        if line:
            return line
    return None  # end of input
