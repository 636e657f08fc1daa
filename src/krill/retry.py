"""THE retry policy for every remote call in krill (policy, teacher, embeddings, remote envs).

Retried: 429 (honouring `Retry-After`), 408/409/5xx, timeouts, connection errors and malformed
responses (`TransientError`). Not retried: other 4xx (bad request, bad key): retrying cannot fix them.
Waits grow exponentially with jitter: `initial · 2^attempt`, capped at `max_wait`.

>>> r = retrying(max_retries=2, initial=0.0)
>>> r(lambda: 42)
42
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import tenacity

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


class TransientError(Exception):
    """A response that was delivered but unusable (empty, not JSON, wrong shape): worth asking again."""


def status_of(exc: BaseException) -> int | None:
    """The HTTP status carried by an openai/httpx error, if any."""
    status = getattr(exc, "status_code", None)
    if status is None and isinstance(getattr(exc, "response", None), httpx.Response):
        status = exc.response.status_code
    return status if isinstance(status, int) else None


def is_retryable(exc: BaseException) -> bool:
    """True for errors a later attempt can fix (rate limits, server errors, timeouts, dropped connections)."""
    import openai

    if isinstance(exc, TransientError | asyncio.TimeoutError | TimeoutError | httpx.TransportError):
        return True
    if isinstance(
        exc, openai.APITimeoutError | openai.APIConnectionError | openai.APIResponseValidationError
    ):
        return True
    status = status_of(exc)
    return status in RETRYABLE_STATUS if status is not None else False


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (`Retry-After`: seconds or HTTP date; `retry-after-ms`)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


class wait_retry_after(tenacity.wait.wait_base):
    """Exponential backoff with jitter; a server's `Retry-After` wins (capped at `max_wait`)."""

    def __init__(self, initial: float = 0.5, max_wait: float = 30.0):
        self.initial, self.max_wait = initial, max_wait

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        asked = retry_after_seconds(exc)
        if asked is not None:
            return min(asked, self.max_wait)
        backoff = self.initial * 2 ** (retry_state.attempt_number - 1)
        return min(self.max_wait, backoff * (0.5 + random.random()))  # jitter spreads a thundering herd


def _kwargs(
    max_retries: int, initial: float, max_wait: float, on_retry: Callable[[BaseException], Any] | None
):
    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry and state.outcome is not None:
            on_retry(state.outcome.exception())

    return dict(
        stop=tenacity.stop_after_attempt(max_retries + 1),
        wait=wait_retry_after(initial, max_wait),
        retry=tenacity.retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


def async_retrying(
    max_retries: int, *, initial: float = 0.5, max_wait: float = 30.0, on_retry=None
) -> tenacity.AsyncRetrying:
    """`async for attempt in async_retrying(n): with attempt: await call()` — or `await r(fn, *args)`."""
    return tenacity.AsyncRetrying(**_kwargs(max_retries, initial, max_wait, on_retry))


def retrying(
    max_retries: int, *, initial: float = 0.5, max_wait: float = 30.0, on_retry=None
) -> tenacity.Retrying:
    """The same policy for synchronous calls: `retrying(5)(fn, *args)`."""
    return tenacity.Retrying(**_kwargs(max_retries, initial, max_wait, on_retry))
