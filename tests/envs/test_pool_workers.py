"""EnvPool (worker processes) and SerialPool: equal results, crashes, hangs, env errors."""

from __future__ import annotations

import os
import signal
import time

import pytest
from counter_env import real_env_or_skip

from krill.envs.pool import EnvPool, SerialPool
from krill.errors import KrillError


def _play_expert(pool, n: int, task_ids: list[str | None]) -> list:
    """Expert episodes on envs 0..n-1 in lockstep; returns every reset and step result."""
    log = [pool.reset_all(task_ids)]
    active = list(range(n))
    while active:
        actions = pool.expert_actions(active)
        results = pool.step(active, actions)
        log.append((list(active), actions, results))
        active = [i for i, r in zip(active, results, strict=True) if not r[2]]
    return log


def test_pool_results_equal_serial():
    tasks = ["t0", "t4", None, "t8", "t2"]
    serial = SerialPool("counter", 5)
    with EnvPool("counter", 5, workers=2, timeout=30) as pool:
        assert (pool.name, pool.max_steps, pool.task_ids()) == ("counter", 10, serial.task_ids())
        got = _play_expert(pool, 5, tasks)
    want = _play_expert(serial, 5, tasks)
    assert got == want
    final = [r for _, _, rs in got[1:] for r in rs if r[2]]
    assert len(final) == 5 and all(r[3]["won"] and r[1] == 10.0 for r in final)
    # observations depend on the action: a different action gives a different observation
    serial.reset_all(["t1", "t1"])
    a, b = serial.step([0, 1], ["inc", "dec"])
    assert a[0] != b[0]


def test_crashed_worker_is_restarted_and_episode_marked_failed():
    with EnvPool("counter", 4, workers=2, timeout=30) as pool:
        pool.reset_all(["t0", "t1", "t2", "t3"])
        res = pool.step([0, 1, 2, 3], ["inc", "crash", "inc", "look"])
        assert res[0][0] == "The counter shows 1." and res[2][0] == "The counter shows 1."
        for r in (res[1], res[3]):  # envs 1 and 3 live on worker 1, which died
            assert r[2] is True and r[3]["error"] == "worker crashed: exit code 3"
            assert r[3]["won"] is False and r[3]["task_id"] in ("t1", "t3")
        assert pool.restarts == 1
        lost = pool.step([1], ["inc"])[0]
        assert lost[2] is True and "episode lost; reset this env" in lost[3]["error"]
        assert pool.step([0], ["inc"])[0][0] == "The counter shows 2."  # worker 0 unaffected
        # kill -9 from outside: the next call notices, restarts, marks the episodes failed
        os.kill(pool._procs[0].pid, signal.SIGKILL)
        res = pool.step([0, 2], ["inc", "inc"])
        assert all(r[2] and r[3]["error"] == "worker crashed: killed by signal 9" for r in res)
        assert pool.restarts == 2
        obs = pool.reset_all(["t0", "t1", "t2", "t3"])
        assert all("error" not in info for _, info in obs)
        assert [r[0] for r in pool.step([0, 1, 2, 3], ["inc"] * 4)] == ["The counter shows 1."] * 4


def test_hung_worker_times_out_and_is_restarted():
    with EnvPool("counter", 2, workers=2, timeout=1.5) as pool:
        pool.reset_all(["t0", "t1"])
        start = time.monotonic()
        res = pool.step([0, 1], ["hang", "inc"])
        assert time.monotonic() - start < 15
        assert res[0][2] is True and res[0][3]["error"] == "worker hung: no reply within 1.5s"
        assert res[1][0] == "The counter shows 1." and "error" not in res[1][3]
        assert pool.restarts == 1
        pool.reset([0], ["t0"])
        assert pool.step([0], ["inc"])[0][0] == "The counter shows 1."


@pytest.mark.parametrize("kind", ["serial", "process"])
def test_env_exception_fails_episode_without_restart(kind):
    pool = SerialPool("counter", 2) if kind == "serial" else EnvPool("counter", 2, workers=1, timeout=30)
    with pool:
        pool.reset_all(["t0", "t1"])
        res = pool.step([0, 1], ["raise", "inc"])
        assert res[0][2] is True and res[0][3]["error"] == "env error: RuntimeError: counter env exploded"
        assert res[1][0] == "The counter shows 1."
        assert getattr(pool, "restarts", 0) == 0
        with pytest.raises(KrillError, match="unknown task 'nope' in split train"):
            pool.reset([0], ["nope"])
        pool.reset([0], ["t0"])  # the broken env was rebuilt
        assert pool.step([0], ["inc"])[0][0] == "The counter shows 1."
        assert pool.expert_actions([0, 1]) == ["inc", "inc"]


def test_bad_calls_and_bad_env_name():
    pool = SerialPool("counter", 2)
    with pytest.raises(KrillError, match="env index 2 out of range 0..1"):
        pool.step([2], ["inc"])
    with pytest.raises(KrillError, match="1 indices but 2 arguments"):
        pool.step([0], ["inc", "inc"])
    with pytest.raises(KrillError, match="duplicate env indices"):
        pool.expert_actions([0, 0])
    with pytest.raises(KrillError, match="could not build 'nope'.*unknown environment 'nope'"):
        EnvPool("nope", 2, workers=1, timeout=5)


@pytest.mark.parametrize("env_name", ["webshop", pytest.param("alfworld", marks=pytest.mark.slow)])
def test_pool_equals_serial_on_real_env(env_name):
    cfg, split = real_env_or_skip(env_name)
    serial = SerialPool(env_name, 4, split, cfg)
    tasks = serial.task_ids()[:4]
    want = _play_expert(serial, 4, tasks)
    serial.close()
    with EnvPool(env_name, 4, split, cfg, workers=2, timeout=300) as pool:
        got = _play_expert(pool, 4, tasks)
    assert got == want
    finals = [r for _, _, rs in got[1:] for r in rs if r[2]]
    assert len(finals) == 4 and all(r[3]["won"] for r in finals)
