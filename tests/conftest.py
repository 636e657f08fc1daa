"""Suite-wide: tiny in-process models run on one torch thread. On a shared 2-core CI box two torch
threads fighting the env processes are ~10x slower than one (measured in tests/models).
The one place this is set: test modules do not repeat it."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli(capsys):
    """Run `krill ARGS` in-process like the console script: returns (exit code, stdout, stderr)."""
    from krill.cli.main import main

    def run(*args: str):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
