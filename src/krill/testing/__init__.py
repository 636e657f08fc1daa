"""Reusable fakes for tests and benchmarks (real behaviour, local only): `FakeOpenAIServer`."""

from krill.testing.openai_server import FAULT_KINDS, FakeOpenAIServer, json_handler

__all__ = ["FAULT_KINDS", "FakeOpenAIServer", "json_handler"]
