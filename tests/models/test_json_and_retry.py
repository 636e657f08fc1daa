"""JSON extraction/validation for teacher answers and the shared retry policy."""

from __future__ import annotations

import httpx
import pytest
import tenacity

from krill.config import load_config
from krill.errors import KrillError
from krill.models import build_chat_client, build_policy
from krill.models.jsonschema_lite import extract_json, validate
from krill.models.local import LocalPolicy
from krill.retry import TransientError, is_retryable, retry_after_seconds, retrying, wait_retry_after


def test_extract_json_variants():
    assert extract_json('```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert extract_json('Here you go: {"a": 1} hope it helps') == {"a": 1}
    assert extract_json("[1, 2]") == [1, 2]
    with pytest.raises(ValueError, match="empty answer"):
        extract_json("  ")
    with pytest.raises(ValueError, match="invalid JSON"):
        extract_json('{"a": 1,,}')


def test_validate_reports_the_first_violation_with_its_path():
    schema = {
        "type": "object",
        "required": ["skills"],
        "additionalProperties": False,
        "properties": {
            "skills": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1}},
                },
            },
            "kind": {"enum": ["general", "specific"]},
            "score": {"type": "number", "minimum": 0},
        },
    }
    assert validate({"skills": [{"name": "x"}], "kind": "general", "score": 1}, schema) is None
    assert validate({}, schema) == "$: missing required key 'skills'"
    assert validate({"skills": []}, schema) == "$.skills: fewer than 1 items"
    assert validate({"skills": [{"name": ""}]}, schema) == "$.skills[0].name: shorter than 1 characters"
    assert validate({"skills": [{"name": 5}]}, schema) == "$.skills[0].name: expected string, got integer"
    assert validate({"skills": [{"name": "x"}], "extra": 1}, schema) == "$: unexpected key 'extra'"
    assert validate({"skills": [{"name": "x"}], "kind": "other"}, schema).startswith(
        "$.kind: 'other' is not one of"
    )
    assert (
        validate({"skills": [{"name": "x"}], "score": True}, schema)
        == "$.score: expected number, got boolean"
    )


def _status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    req = httpx.Request("POST", "http://x/v1/chat/completions")
    return httpx.HTTPStatusError(
        "boom", request=req, response=httpx.Response(status, headers=headers, request=req)
    )


def test_retryable_classification():
    assert is_retryable(_status_error(429)) and is_retryable(_status_error(503))
    assert not is_retryable(_status_error(400)) and not is_retryable(_status_error(401))
    assert is_retryable(TransientError("empty")) and is_retryable(httpx.ConnectError("refused"))
    assert not is_retryable(ValueError("bug"))


def test_retry_after_is_honoured_and_capped():
    assert retry_after_seconds(_status_error(429, {"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(_status_error(429, {"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(_status_error(429)) is None
    wait = wait_retry_after(initial=0.5, max_wait=2.0)
    state = tenacity.RetryCallState(None, None, (), {})
    state.set_exception((httpx.HTTPStatusError, _status_error(429, {"Retry-After": "60"}), None))
    assert wait(state) == 2.0  # capped
    state.set_exception((TransientError, TransientError("x"), None))
    state.attempt_number = 3
    assert 1.0 <= wait(state) <= 2.0  # 0.5·2² with ±50% jitter, capped


def test_retrying_stops_after_max_retries_and_reraises():
    calls = []

    def flaky():
        calls.append(1)
        raise TransientError("still broken")

    with pytest.raises(TransientError):
        retrying(2, initial=0.0)(flaky)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError):
        retrying(5, initial=0.0)(lambda: calls.append(1) or (_ for _ in ()).throw(ValueError("bug")))
    assert len(calls) == 1  # not retryable: one call


def test_build_policy_and_chat_client(tmp_path):
    cfg = load_config(
        overrides=["model.policy.model=tiny", "model.policy.device=cpu", f"cache_dir={tmp_path}"]
    )
    pol = build_policy(cfg)
    assert isinstance(pol, LocalPolicy) and pol.name == "tiny"
    with pytest.raises(
        KrillError, match=r"^config: model.policy.backend: Input should be 'local' or 'openai', got 'vllm'$"
    ):
        load_config(overrides=["model.policy.backend=vllm"])  # refused when loaded, before any model is built
    remote = load_config(
        overrides=[
            "model.teacher.backend=llm",
            "model.teacher.api_base=https://api.example.com/v1",
            "model.teacher.api_key_env=NOPE_KEY",
        ]
    )
    with pytest.raises(KrillError, match="NOPE_KEY"):
        build_chat_client(remote)


def test_extract_json_prefers_the_outermost_value():
    assert extract_json('Here: [{"a": 1}] done') == [{"a": 1}]
    assert extract_json('Answer: {"list": [1, 2]} ok') == {"list": [1, 2]}
