"""JSON out of LLM answers: strip fences/prose, parse, and check against a small JSON-Schema subset.

Supported keywords: type (incl. lists of types), properties, required, additionalProperties (bool),
items, enum, minItems, maxItems, minLength, maxLength, minimum, maximum. Enough for teacher answers;
`jsonschema` is not a dependency.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def extract_json(text: str) -> Any:
    """Parse the JSON in an answer: fenced block first, else the outermost {...} / [...]; ValueError if none.

    >>> extract_json('Sure!\\n```json\\n{"a": 1}\\n```')
    {'a': 1}
    """
    if not text or not text.strip():
        raise ValueError("empty answer")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    spans = [(text.find(o), text.rfind(c)) for o, c in (("{", "}"), ("[", "]"))]
    for lo, hi in sorted(spans):  # the bracket that opens first is the outermost value
        if 0 <= lo < hi:
            candidates.append(text[lo : hi + 1])
    error = "no JSON found"
    for cand in candidates:
        try:
            return json.loads(cand.strip())
        except json.JSONDecodeError as exc:
            error = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    raise ValueError(error)


def _type_ok(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False  # bool is an int subclass in Python, not in JSON
    return isinstance(value, _TYPES.get(name, object))


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> str | None:
    """First violation as '<path>: <problem>', or None when `value` fits `schema`.

    >>> validate({"name": 3}, {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})
    '$.name: expected string, got integer'
    """
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_type_ok(value, n) for n in names):
            return f"{path}: expected {' or '.join(names)}, got {_json_type(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {schema['enum']}"
    if isinstance(value, dict):
        return _validate_object(value, schema, path)
    if isinstance(value, list):
        return _validate_array(value, schema, path)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{path}: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']} characters"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: below the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: above the maximum {schema['maximum']}"
    return None


def _validate_object(value: dict, schema: dict[str, Any], path: str) -> str | None:
    for key in schema.get("required", []):
        if key not in value:
            return f"{path}: missing required key {key!r}"
    props = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(props))
        if extra:
            return f"{path}: unexpected key {extra[0]!r}"
    for key, sub in props.items():
        if key in value:
            err = validate(value[key], sub, f"{path}.{key}")
            if err:
                return err
    return None


def _validate_array(value: list, schema: dict[str, Any], path: str) -> str | None:
    if len(value) < schema.get("minItems", 0):
        return f"{path}: fewer than {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{path}: more than {schema['maxItems']} items"
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            err = validate(item, items, f"{path}[{i}]")
            if err:
                return err
    return None


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _type_ok(value, name):
            return name
    return type(value).__name__
