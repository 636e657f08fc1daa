"""Shared helpers for the foundation tests: a Rust-krill bank (the in-process CLI is tests/conftest.py's `cli`)."""

from __future__ import annotations

import json

import pytest
from foundation_data import rust_bank_dict


@pytest.fixture
def rust_bank(tmp_path):
    p = tmp_path / "rust_bank.json"
    p.write_text(json.dumps(rust_bank_dict(), indent=2))
    return p
