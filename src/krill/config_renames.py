"""Config keys that moved to their true homes, and how an old spelling still loads.

Each old key is read as its new one with a one-line notice (a config file, `--set`, a preset, or
`KrillConfig.override`); a run's recorded `config.yaml` is read the same way, silently, so a run
recorded before the rename resumes without a drift error.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from krill.errors import KrillError

log = logging.getLogger("krill.config")

# old dotted key → where it lives now (and why it moved)
RENAMED: dict[str, str] = {
    # every phase's prompts are capped by it (agent/prompts.py, agent/actors.py), not only RL's
    "rl.max_prompt_length": "agent.max_prompt_length",
    # one cap on a reply's tokens, in every phase (it had a second name for RL rollouts)
    "rl.max_response_length": "model.policy.max_new_tokens",
    # the adapter SFT trains is the one RL trains on (or builds fresh when SFT is skipped)
    "sft.lora": "lora",
}


def apply_renames(data: dict[str, Any], source: str = "config", *, record: bool = False) -> dict[str, Any]:
    """A copy of `data` (a nested config dict) with every old spelling moved to its new key; `data`
    itself (a caller's `extra`, a parsed file) is not changed.

    Both spellings set to different values is a mistake in a config the user wrote (an error naming
    both); in a recorded run config (`record=True`, which always holds both), the two values are kept
    side by side as the new key's value, so the drift check reports the change instead of hiding it."""
    data = copy.deepcopy(data)
    for old, new in RENAMED.items():
        found, value = _pop(data, old.split("."))
        if not found:
            continue
        present, current = _get(data, new.split("."))
        if present and current != value:
            if not record:
                raise KrillError(f"{old} is the old name of {new}, and both are set ({value!r} and "
                                 f"{current!r}): keep {new}", path=source, where=old)  # fmt: skip
            value = f"{current!r} ({new}) / {value!r} ({old})"
        elif not record:
            log.warning("%s: %s is now %s; the old name still loads, but rename it", source, old, new)
        data = _put(data, new.split("."), value)
    return data


def _pop(data: dict[str, Any], keys: list[str]) -> tuple[bool, Any]:
    node: Any = data
    for k in keys[:-1]:
        node = node.get(k) if isinstance(node, dict) else None
    if isinstance(node, dict) and keys[-1] in node:
        return True, node.pop(keys[-1])
    return False, None


def _get(data: dict[str, Any], keys: list[str]) -> tuple[bool, Any]:
    node: Any = data
    for k in keys:
        if not (isinstance(node, dict) and k in node):
            return False, None
        node = node[k]
    return True, node


def _put(data: dict[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value
    return data
