"""The original (Rust) krill `config.demo.json`, mapped onto krill's config tree.

Original shape (od0/krill `src/config.rs`): sections sft, rl, skill_retrieval, evolution, model, with
flat model keys `{policy,teacher,embedding}_{api_base,model_id,api_key}`. Renamed keys map as
`rl.kl_coeff → rl.kl_coef`, `rl.clip_epsilon → rl.clip_ratio`, `rl.training_epochs → rl.iterations`,
`skill_retrieval.similarity_threshold → skill_retrieval.threshold`, `evolution.evolution_threshold
→ evolution.threshold`, `max_analysis_deep/shallow → deep/shallow`. API keys are never stored: an
empty key means `OPENAI_API_KEY` (as in the original); a non-empty one is dropped with a warning.
"""

from __future__ import annotations

import sys
from typing import Any

from krill.config_renames import RENAMED
from krill.errors import KrillError

# original "section.key" → krill "section.key"
KEY_MAP: dict[str, str] = {
    "sft.learning_rate": "sft.learning_rate",
    "sft.batch_size": "sft.batch_size",
    "sft.epochs": "sft.epochs",
    "rl.learning_rate": "rl.learning_rate",
    "rl.batch_size": "rl.batch_size",
    "rl.group_size": "rl.group_size",
    "rl.kl_coeff": "rl.kl_coef",
    "rl.clip_epsilon": "rl.clip_ratio",
    "rl.invalid_action_penalty": "rl.invalid_action_penalty",
    "rl.max_prompt_length": "agent.max_prompt_length",
    "rl.max_response_length": "model.policy.max_new_tokens",
    "rl.training_epochs": "rl.iterations",
    "skill_retrieval.top_k": "skill_retrieval.top_k",
    "skill_retrieval.similarity_threshold": "skill_retrieval.threshold",
    "evolution.validation_interval": "evolution.validation_interval",
    "evolution.max_new_skills": "evolution.max_new_skills",
    "evolution.evolution_threshold": "evolution.threshold",
    "evolution.max_analysis_deep": "evolution.deep",
    "evolution.max_analysis_shallow": "evolution.shallow",
}
ROLES = ("policy", "teacher", "embedding")
MODEL_FIELDS = ("api_base", "model_id", "api_key")
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
# Keys only the original had: seeing any of them means the file is in the original shape.
# (krill's own old spellings of the prompt and reply caps are not: `krill.config_renames` reads them)
_SIGNATURE = {k for k, v in KEY_MAP.items() if k != v and k not in RENAMED} | {
    f"model.{r}_{f}" for r in ROLES for f in MODEL_FIELDS
}


def is_original_config(data: Any) -> bool:
    """True for a dict in the original krill JSON shape (e.g. has `rl.kl_coeff` or `model.teacher_model_id`)."""
    if not isinstance(data, dict):
        return False
    for section, body in data.items():
        if isinstance(body, dict) and any(f"{section}.{k}" in _SIGNATURE for k in body):
            return True
    return False


def map_original_config(data: dict[str, Any], path: Any = None, *, warn: bool = True) -> dict[str, Any]:
    """Translate an original krill config dict into krill's nested config dict."""
    out: dict[str, Any] = {}
    for _orig, krill_key, value in original_mapping(data, path=path, warn=warn):
        if krill_key is None:
            continue
        node = out
        *parents, leaf = krill_key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def original_mapping(
    data: dict[str, Any], path: Any = None, *, warn: bool = False
) -> list[tuple[str, str | None, Any]]:
    """(original key, krill key or None when dropped, value) for every key in the file."""
    rows: list[tuple[str, str | None, Any]] = []
    for section, body in data.items():
        if section not in {"sft", "rl", "skill_retrieval", "evolution", "model"}:
            raise KrillError(
                "unknown section in original krill config; known: sft, rl, skill_retrieval, evolution, model",
                path=path,
                where=section,
            )
        if not isinstance(body, dict):
            raise KrillError(f"expected an object, got {type(body).__name__}", path=path, where=section)
        for key, value in body.items():
            orig = f"{section}.{key}"
            if section == "model":
                rows.extend(_model_rows(key, value, path, warn))
            elif orig in KEY_MAP:
                rows.append((orig, KEY_MAP[orig], value))
            else:
                known = ", ".join(k.split(".", 1)[1] for k in KEY_MAP if k.startswith(section + "."))
                raise KrillError(
                    f"unknown key in original krill config; known in {section}: {known}",
                    path=path,
                    where=orig,
                )
    return rows


def _model_rows(key: str, value: Any, path: Any, warn: bool) -> list[tuple[str, str | None, Any]]:
    role, _, field = key.partition("_")
    orig = f"model.{key}"
    if role not in ROLES or field not in MODEL_FIELDS:
        known = ", ".join(f"{r}_{f}" for r in ROLES for f in MODEL_FIELDS)
        raise KrillError(
            f"unknown key in original krill config; known in model: {known}", path=path, where=orig
        )
    if not isinstance(value, str):
        raise KrillError(f"expected a string, got {type(value).__name__}", path=path, where=orig)
    if field == "model_id":
        return [(orig, f"model.{role}.model", value)]
    if field == "api_base":
        if not value:
            return [(orig, None, value)]
        # an API base means a served model: the teacher's backend is "llm", the others "openai"
        return [(orig, f"model.{role}.api_base", value), (orig, f"model.{role}.backend", _backend(role))]
    if value and warn:  # a real key in a config file: do not keep it anywhere
        sys.stderr.write(
            f"warning: {path}: {orig}: API keys are not read from config files; "
            f"export it as {DEFAULT_KEY_ENV} instead (mapped to model.{role}.api_key_env)\n"
        )
    return [(orig, f"model.{role}.api_key_env", DEFAULT_KEY_ENV)]


def _backend(role: str) -> str:
    return "llm" if role == "teacher" else "openai"
