"""Show the effective configuration (secrets masked)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
import yaml

from krill.cli import common

app = typer.Typer(
    help="Show the effective configuration (secrets masked), or what each key means (explain).",
    no_args_is_help=True,
)


@app.command("show")
def show() -> None:
    """Print the effective config as YAML: defaults < preset < file < --set; keys shown masked."""
    cfg = common.get_config()
    typer.echo(render_config(cfg.to_public_dict(), common.STATE.config_file), nl=False)


@app.command("explain")
def explain_cmd(
    key: str = typer.Argument("", help="A section (agent) or key (agent.context); empty: everything."),
) -> None:
    """What each config key does, with its default: `krill config explain agent.context`."""
    from krill.config_keys import explain

    for dotted, default, description in explain(key):
        typer.echo(f"{dotted} = {default}\n    {description}" if description else f"{dotted} = {default}")


def render_config(public: dict, config_file: str | None) -> str:
    """YAML of the config, headed by comments: where it came from, the original-krill key mapping,
    and which API-key variables are set (values never printed)."""
    head = [
        f"# effective krill config (file: {config_file or 'none'}; preset: {public.get('preset') or 'none'})"
    ]
    head += _original_mapping_comments(config_file)
    head += _secret_comments(public)
    body = yaml.safe_dump(public, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(head) + "\n" + body


def _original_mapping_comments(config_file: str | None) -> list[str]:
    if not config_file or Path(config_file).suffix.lower() != ".json":
        return []
    from krill.formats.original_config import is_original_config, original_mapping
    from krill.io import read_json
    from krill.secrets import mask_url

    data = read_json(config_file)
    if not is_original_config(data):
        return []
    lines = ["# mapped from the original krill config:"]
    for orig, krill_key, value in original_mapping(data, path=config_file):
        section, key = orig.split(".", 1)
        if orig.endswith("_api_key"):  # the key itself is never shown nor stored
            orig += " (****, not stored)" if data[section][key] else " (empty)"
        shown = mask_url(value) if isinstance(value, str) else value
        target = f"{krill_key} = {shown!r}" if krill_key else "(empty: unused)"
        lines.append(f"#   {orig} -> {target}")
    return lines


def _secret_comments(public: dict) -> list[str]:
    names = {public["env"]["token_env"]}
    names |= {public["model"][role]["api_key_env"] for role in ("policy", "teacher", "embedding")}
    return [f"# secret ${n}: {'**** (set)' if os.environ.get(n) else '(not set)'}" for n in sorted(names)]
