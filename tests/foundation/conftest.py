"""Shared helpers for the foundation tests: a Rust-krill bank, and the CLI run in-process."""

from __future__ import annotations

import json

import pytest
from foundation_data import rust_bank_dict

from krill.cli.main import main


@pytest.fixture
def rust_bank(tmp_path):
    p = tmp_path / "rust_bank.json"
    p.write_text(json.dumps(rust_bank_dict(), indent=2))
    return p


@pytest.fixture
def cli(capsys):
    """Run `krill ARGS` in-process like the console script: returns (exit code, stdout, stderr)."""

    def run(*args: str):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
