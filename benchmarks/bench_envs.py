"""Environment throughput: resets/s and steps/s per built-in env, pool speed-up, HTTP overhead.

    python benchmarks/bench_envs.py [--envs alfworld,webshop] [--episodes 8] [--workers 2]

For each env, in this process: resets/s over distinct tasks, and steps/s of expert episodes (time
inside `env.step` only; the expert's own planning time is reported apart). Then the same batch of
expert episodes is played by `SerialPool` and by `EnvPool(workers=2)` side by side (worker start-up
excluded, reported apart) and the ratio printed; then by `RemoteEnv` through a `krill env serve`
subprocess. Prints a markdown table and `BENCH {json}` lines (read by benchmarks/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from krill.config import load_config
from krill.envs.base import ENVS, _import_builtin_envs, make_env
from krill.envs.pool import EnvPool, SerialPool
from krill.envs.remote import RemoteEnv

ROWS: list[dict[str, Any]] = []
STEP_LIMITS = ["env.alfworld.max_steps=50", "env.webshop.max_steps=15"]  # the benchmarks' own limits


def bench(name: str, value: float, unit: str, **extra: Any) -> None:
    row = {"name": name, "value": round(value, 3), "unit": unit, **extra}
    ROWS.append(row)
    print("BENCH " + json.dumps(row), flush=True)


def bench_overrides(env_name: str, episodes: int) -> list[str]:
    """Small generated data (the tiny preset's catalogue, `episodes` eval games) but the real step limits."""
    sizes = [
        f"env.alfworld.valid_unseen_games={max(12, episodes)}",
        f"env.webshop.num_test_goals={max(20, episodes)}",
    ]
    return [*STEP_LIMITS, *sizes, f"env.name={env_name}"]


def single_process(env_name: str, split: str, cfg: Any, episodes: int) -> tuple[list[str], int]:
    t0 = time.perf_counter()
    env = make_env(env_name, split, cfg=cfg)
    build = time.perf_counter() - t0
    tasks = env.task_ids()[:episodes]
    rates = []
    for _ in range(2):  # first pass: cold (games loaded/translated); second: warm (engine caches hit)
        t0 = time.perf_counter()
        for t in tasks:
            env.reset(t)
        rates.append(len(tasks) / (time.perf_counter() - t0))
    for _ in range(2):  # the second pass is timed: lazy indexes and caches are built in the first
        steps, step_time, expert_time, won = 0, 0.0, 0.0, 0
        for t in tasks:
            env.reset(t)
            done = False
            while not done:
                t0 = time.perf_counter()
                action = env.expert_action()
                t1 = time.perf_counter()
                _, _, done, info = env.step(action)
                t2 = time.perf_counter()
                expert_time += t1 - t0
                step_time += t2 - t1
                steps += 1
            won += bool(info.get("won"))
    env.close()
    print(f"{env_name}: env built in {build:.2f}s; {len(tasks)} expert episodes, {steps} steps, {won} won")
    bench(f"{env_name} resets/s (1 process, first visit)", rates[0], "resets/s")
    bench(f"{env_name} resets/s (1 process, revisit)", rates[1], "resets/s")
    bench(f"{env_name} steps/s (1 process, env.step only)", steps / step_time, "steps/s")
    bench(f"{env_name} expert actions/s", steps / max(expert_time, 1e-9), "actions/s")
    return tasks, steps


def play_batch(
    pool: Any, tasks: list[str], min_repeats: int = 3, min_seconds: float = 2.0
) -> tuple[float, int]:
    """Lockstep expert episodes on one batch, best of >= 3 runs (more until 2 s); returns (seconds, steps)."""
    runs, t0 = [], time.perf_counter()
    while len(runs) < min_repeats or (time.perf_counter() - t0 < min_seconds and len(runs) < 100):
        runs.append(_play_once(pool, tasks))
    return min(r[0] for r in runs), runs[0][1]


def _play_once(pool: Any, tasks: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    pool.reset_all(tasks)
    active, steps = list(range(len(tasks))), 0
    while active:
        results = pool.step(active, pool.expert_actions(active))
        steps += len(active)
        active = [i for i, r in zip(active, results, strict=True) if not r[2]]
    return time.perf_counter() - t0, steps


def pool_speedup(env_name: str, split: str, cfg: Any, tasks: list[str], workers: int) -> None:
    serial = SerialPool(env_name, len(tasks), split, cfg)
    serial_s, steps = play_batch(serial, tasks)
    serial.close()
    t0 = time.perf_counter()
    pool = EnvPool(env_name, len(tasks), split, cfg, workers=workers, timeout=600)
    startup = time.perf_counter() - t0
    pool_s, pool_steps = play_batch(pool, tasks)
    pool.close()
    if pool_steps != steps:  # the same expert on the same tasks must take the same steps
        print(f"WARNING: {env_name}: the pool took {pool_steps} steps, the serial run {steps}")
    print(
        f"{env_name}: {len(tasks)} episodes / {steps} steps: serial {serial_s:.2f}s, "
        f"pool({workers}) {pool_s:.2f}s (+{startup:.1f}s worker start-up)"
    )
    bench(f"{env_name} batch steps/s, serial", steps / serial_s, "steps/s")
    bench(
        f"{env_name} batch steps/s, EnvPool {workers} workers",
        pool_steps / pool_s,
        "steps/s",
        baseline=round(steps / serial_s, 3),
        ratio=round((pool_steps / pool_s) / (steps / serial_s), 3),
    )


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def parallel_control(workers: int) -> None:
    """The best a process pool could do right now: pure-Python work, one process vs `workers`."""
    import multiprocessing as mp

    n = 2_000_000
    t0 = time.perf_counter()
    for _ in range(workers):
        _spin(n)
    one = time.perf_counter() - t0
    with mp.get_context("spawn").Pool(workers) as p:
        p.map(_spin, [10] * workers)  # start-up excluded
        t0 = time.perf_counter()
        p.map(_spin, [n] * workers)
        many = time.perf_counter() - t0
    print(f"control: {workers}x pure-Python work, 1 process {one:.2f}s vs {workers} processes {many:.2f}s")
    bench(
        f"control: {workers} processes vs 1 on pure-Python work",
        one / many,
        "x speed-up",
        ratio=round(one / many, 3),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remote_overhead(
    env_name: str, split: str, tasks: list[str], expected_steps: int, overrides: list[str]
) -> None:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "krill",
        "--preset",
        "tiny",
        *[f"--set={o}" for o in overrides],
        "env",
        "serve",
    ]
    cmd += ["--env", env_name, "--split", split, "--port", str(port)]
    env_vars = {**os.environ, "KRILL_ENV_TOKEN": ""}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_vars)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 300
        while True:
            try:
                remote = RemoteEnv(url, retries=0, timeout=60)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"`{' '.join(cmd)}` did not start") from None
                time.sleep(0.5)
        t0, steps = time.perf_counter(), 0
        for t in tasks:
            remote.reset(t)
            done = False
            while not done:
                _, _, done, _ = remote.step(remote.expert_action())
                steps += 1
        secs = time.perf_counter() - t0
        remote.close()
        if steps != expected_steps:
            print(f"WARNING: {env_name}: {steps} steps through HTTP, {expected_steps} in process")
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"{env_name}: {steps} steps through HTTP (reset+expert+step round trips) in {secs:.2f}s")
    bench(f"{env_name} steps/s via krill env serve (incl. /expert)", steps / secs, "steps/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", default="alfworld,webshop")
    ap.add_argument("--episodes", type=int, default=16, help="episodes per measurement batch")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-remote", action="store_true", help="skip the HTTP measurement")
    args = ap.parse_args()
    _import_builtin_envs()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    # a pool can only beat one process when cores are idle: the load average says whether they were
    print(f"machine: {os.cpu_count()} CPU cores, load average {load}; Python {sys.version.split()[0]}")
    parallel_control(args.workers)
    for env_name in args.envs.split(","):
        if env_name not in ENVS:
            print(f"{env_name}: not registered in this checkout, skipped")
            continue
        split = "valid_unseen" if env_name == "alfworld" else "test"
        overrides = bench_overrides(env_name, args.episodes)
        cfg = load_config(None, preset="tiny", overrides=overrides)
        tasks, steps = single_process(env_name, split, cfg, args.episodes)
        pool_speedup(env_name, split, cfg, tasks, args.workers)
        if not args.no_remote:
            remote_overhead(env_name, split, tasks, steps, overrides)
    print("\n| measurement | value | unit | ratio |\n|---|---|---|---|")
    for r in ROWS:
        print(f"| {r['name']} | {r['value']:g} | {r['unit']} | {r.get('ratio', '')} |")


if __name__ == "__main__":
    main()
