"""Registers the `counter` test env (tests/envs/counter_env.py) for every test in this folder.

Helpers live in `counter_env`, a uniquely named module, not here: `from conftest import ...` resolves to
whichever conftest.py pytest imported last, and pool workers unpickle the env factory by module name.
"""

import pytest
from counter_env import CounterEnv


@pytest.fixture
def counter_env() -> CounterEnv:
    return CounterEnv()
