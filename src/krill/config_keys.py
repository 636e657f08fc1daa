"""What config keys mean, for people: `explain` (the `krill config explain` listing) and the one-line
message for a bad key or value (with the closest key when one is misspelled)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from krill.config_schema import KrillConfig
from krill.errors import KrillError


def explain(key: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, description) of every field under `key` ('' = the whole tree;
    'agent' = a section; 'agent.context' = one field). An unknown key is a KrillError."""
    node: type[BaseModel] = KrillConfig
    parts = [p for p in key.split(".") if p]
    for i, part in enumerate(parts):
        field = node.model_fields.get(part)
        if field is None:
            raise KrillError("no such config key", where=".".join(parts[: i + 1]))
        sub = field.annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            if i != len(parts) - 1:
                raise KrillError("no such config key", where=".".join(parts[: i + 2]))
            return [(key, _default_text(field), field.description or "")]
        node = sub
    return list(_explain_section(node, ".".join(parts)))


def _explain_section(node: type[BaseModel], prefix: str):
    for name, field in node.model_fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _explain_section(sub, dotted)
        else:
            yield dotted, _default_text(field), field.description or ""


def _default_text(field: Any) -> str:
    return repr(field.get_default(call_default_factory=True))


def validation_message(err: dict[str, Any]) -> str:
    """pydantic's first error as one line, with the value that was given."""
    if err["type"] == "extra_forbidden":
        return "unknown key" + _did_you_mean(err["loc"])
    if err["type"] == "value_error":  # our own validators' messages say it all
        return str(err["ctx"]["error"])
    given = err.get("input")
    return f"{err['msg']}, got {given!r}" if isinstance(given, str | int | float) else err["msg"]


def _did_you_mean(loc: tuple) -> str:
    """'; did you mean rl.temperature?' for a misspelled key (the closest field of its section)."""
    node: Any = KrillConfig
    for part in loc[:-1]:
        field = node.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return ""
        node = field.annotation
    close = difflib.get_close_matches(str(loc[-1]), list(node.model_fields), n=1)
    return f"; did you mean {'.'.join(map(str, (*loc[:-1], close[0])))}?" if close else ""
