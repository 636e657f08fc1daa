"""Building the effective config: defaults < preset (`--preset` or `KRILL_PRESET`) < config file
(`--config`, TOML/YAML, or the original krill JSON) < `--set section.key=value`; each mistake is one
line naming the file and the key (`krill.config_keys.validation_message`)."""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from krill.config_keys import validation_message
from krill.config_renames import apply_renames
from krill.config_schema import PRESETS, KrillConfig, _nest, deep_merge
from krill.errors import KrillError
from krill.schema import format_loc


def preset_dict(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise KrillError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    text = resources.files("krill.presets").joinpath(f"{name}.yaml").read_text("utf-8")
    return {**(yaml.safe_load(text) or {}), "preset": name}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """TOML, YAML or JSON. JSON in the original krill shape is mapped onto this tree."""
    from krill.io import parse_json, read_text

    path = Path(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = parse_json(text, path=path)
            from krill.formats.original_config import is_original_config, map_original_config

            if is_original_config(data):
                data = map_original_config(data, path=path)
        else:
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise KrillError(f"invalid config: {str(exc).splitlines()[0]}", path=path) from None
    except RecursionError:  # a config nested thousands of levels deep is an attack or a bug
        raise KrillError("invalid config: nested too deeply", path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KrillError("config must be a mapping of sections", path=path)
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """'rl.group_size=4' → (['rl', 'group_size'], 4); values parse as YAML scalars/lists."""
    if "=" not in item:
        raise KrillError(f"--set expects section.key=value, got {item!r}")
    key, raw = item.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise KrillError(f"--set has an empty key: {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return keys, value


def load_config(
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    preset: str | None = None,
    extra: dict[str, Any] | None = None,
) -> KrillConfig:
    """Build the effective config: defaults < preset < file < `extra` < `--set` overrides."""
    data: dict[str, Any] = {}
    preset = preset or os.environ.get("KRILL_PRESET") or None
    if preset:
        data = deep_merge(data, apply_renames(preset_dict(preset), f"preset {preset}"))
    source = "config"
    if config_file:
        data = deep_merge(data, apply_renames(read_config_file(config_file), str(config_file)))
        source = str(config_file)
    if extra:
        data = deep_merge(data, apply_renames(extra))
    for item in overrides or []:
        keys, value = parse_override(item)
        data = deep_merge(data, apply_renames(_nest(keys, value), "--set"))
    try:
        cfg = KrillConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise KrillError(validation_message(err), path=source, where=format_loc(tuple(err["loc"]))) from None
    check_endpoints(cfg, source)
    check_cache_dir(cfg, source)
    return cfg


def check_cache_dir(cfg: KrillConfig, source: str) -> None:
    """`cache_dir` (or KRILL_CACHE) must be a folder, or not exist yet: a file there fails every phase."""
    path = Path(cfg.cache_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise KrillError("is not a folder: set cache_dir (or KRILL_CACHE) to a folder krill may write",
                         path=path, where="cache_dir")  # fmt: skip


# per role: the backend that ignores `api_base`, and the one that uses it
ENDPOINT_BACKENDS = {
    "policy": ("local", "openai"),
    "teacher": ("analytic", "llm"),
    "embedding": ("local", "openai"),
}


def check_endpoints(cfg: KrillConfig, source: str) -> None:
    """An `api_base` the role's backend would ignore is a mistake: say so now, not after a long run."""
    for role, (ignoring, using) in ENDPOINT_BACKENDS.items():
        ep = getattr(cfg.model, role)
        if ep.api_base and ep.backend.lower() == ignoring:
            raise KrillError(
                f"set, but backend {ignoring!r} ignores it: set model.{role}.backend={using} "
                f"(or leave model.{role}.api_base unset)",
                path=source,
                where=f"model.{role}.api_base",
            )
