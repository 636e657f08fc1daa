"""ALFWorld envs used from several threads (as `krill env serve` runs sessions) give the results of a
serial run, and session churn does not load a new planner library per env (issue 24)."""

from __future__ import annotations

import random
import threading

import pytest

from krill.config import KrillConfig
from krill.envs.alfworld import engine
from krill.envs.alfworld.generate import generate_games
from krill.envs.base import make_env

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("alfgames")
    generate_games(root, {"valid_unseen": 6}, seed=3)
    cfg = KrillConfig(cache_dir=str(tmp_path_factory.mktemp("cache")))
    return root, cfg


def _in_threads(fn, n: int) -> None:
    """Run fn(0) … fn(n-1) in n threads at once and wait for all of them."""
    threads = [threading.Thread(target=fn, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _play(env, task_id: str, seed: int, steps: int = 2) -> list:
    """Reset and a few seeded random steps: every observation and admissible list along the way."""
    rng = random.Random(seed)
    obs, info = env.reset(task_id)
    out = [(obs, tuple(info["admissible_actions"]))]
    for _ in range(steps):
        obs, _, done, info = env.step(rng.choice(info["admissible_actions"]))
        out.append((obs, tuple(info["admissible_actions"])))
        if done:
            break
    return out


def test_threads_give_the_serial_results(setup):
    root, cfg = setup
    serial_env = make_env("alfworld", "valid_unseen", cfg=cfg, games_dir=root)
    tasks = serial_env.task_ids()
    jobs = [(tasks[i % len(tasks)], i) for i in range(48)]
    want = {job: _play(serial_env, *job) for job in jobs}
    serial_env.close()

    got, errors = {}, []

    def worker(k: int) -> None:
        env = make_env("alfworld", "valid_unseen", cfg=cfg, games_dir=root)
        try:
            for job in jobs[k::4]:
                got[job] = _play(env, *job)
        except Exception as exc:  # noqa: BLE001 - reported below with the thread's job
            errors.append(f"thread {k}: {type(exc).__name__}: {exc}")
        finally:
            env.close()

    _in_threads(worker, 4)
    assert not errors, errors
    wrong = [job for job in jobs if got.get(job) != want[job]]
    assert not wrong, f"{len(wrong)} of {len(jobs)} threaded episodes differ from the serial run"


def test_server_sessions_in_parallel_give_the_serial_results(setup):
    """`krill env serve` runs each session's env calls in its own thread (issue 24: HTTP 500s)."""
    from counter_env import live_server

    from krill.envs.remote import RemoteEnv
    from krill.envs.server import create_app

    root, cfg = setup
    scfg = cfg.override({"env.alfworld.games_dir": str(root)})
    serial_env = make_env("alfworld", "valid_unseen", cfg=scfg)
    tasks = serial_env.task_ids()
    jobs = [(tasks[i % len(tasks)], i) for i in range(24)]
    want = {job: _play(serial_env, *job) for job in jobs}
    serial_env.close()
    for cache in (engine._SYMBOLS, engine._QUERIES, engine._LOGICS, engine._TRANSLATIONS):
        cache.clear()  # cold caches: the sessions parse concurrently, as a fresh server does
    got, errors = {}, []
    with live_server(create_app("alfworld", "valid_unseen", scfg)) as url:

        def client(k: int) -> None:
            env = RemoteEnv(url, client_id=f"client-{k}")
            try:
                for job in jobs[k::4]:
                    got[job] = _play(env, *job)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(f"client {k}: {type(exc).__name__}: {exc}")
            finally:
                env.close()

        _in_threads(client, 4)
    assert not errors, errors
    assert [job for job in jobs if got.get(job) != want[job]] == []


def test_text_parses_from_threads_equal_serial_parses():
    """TextWorld's parser is one module-wide object: unlocked, 4 threads x 40 parses raised
    IndexError/TypeError/FailedToken and returned silently wrong symbols."""
    texts = [
        f"You arrive at {{loc_{i}}}. On the #obj_{i}#, you see [{{o.name}} | o in objects]{i}."
        for i in range(160)
    ]

    def shown(symbols) -> list[str]:
        return [repr(vars(s)) for s in symbols]

    want = {t: shown(engine.parse_symbols(t)) for t in texts}
    got, errors = {}, []

    def worker(k: int) -> None:
        for t in texts[k::4]:
            try:
                got[t] = shown(engine.parse_symbols(t))
            except Exception as exc:  # noqa: BLE001 - counted below
                errors.append(type(exc).__name__)

    _in_threads(worker, 4)
    assert not errors, errors
    assert [t for t in texts if got[t] != want[t]] == []


def test_session_churn_reuses_planner_libraries(setup):
    root, cfg = setup
    before = engine.LIBRARIES_LOADED
    for _ in range(12):  # open, play, close: as a server's sessions come and go
        env = make_env("alfworld", "valid_unseen", cfg=cfg, games_dir=root)
        env.reset(env.task_ids()[0])
        env.close()
    assert engine.LIBRARIES_LOADED - before <= 1  # one copy, reused; each used to load ~33 MB
