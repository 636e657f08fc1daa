"""Environment faults: a pool worker that crashes or hangs, an env that raises, an env server that goes
away mid-episode and comes back. The episode is recorded as failed with the reason in its metadata;
the run goes on and every other episode is recorded normally."""

from __future__ import annotations

import threading
import time
from typing import Any

import fault_envs  # noqa: F401  (registers the `flaky` env)
from fault_helpers import unparseable_files

from krill.agent.actors import ExpertActor
from krill.agent.collect import CollectOptions, collect
from krill.agent.rollout import run_episodes
from krill.config import KrillConfig
from krill.envs.pool import EnvPool, make_pool
from krill.envs.server import create_app
from krill.formats.trajectories import load_trajectories

REASONS = {
    "crash": "worker crashed: exit code 3",
    "hang": "worker hung: no reply within 1.5s",
    "raise": "env error: RuntimeError: the corridor collapsed",
}


def test_pool_worker_crash_hang_and_env_error_fail_only_their_episodes(tmp_path, faults):
    cfg = KrillConfig().override(
        {"env.workers": 2, "env.pool_timeout": 1.5}
    )  # what make_pool passes to EnvPool
    out = tmp_path / "trajectories.jsonl"
    with EnvPool("flaky", 2, workers=cfg.env.workers, timeout=cfg.env.pool_timeout) as pool:
        res = collect(cfg, CollectOptions(episodes=6, policy="expert", out=str(out)), pool=pool)
        restarts = pool.restarts
    faults.inject("env: pool worker crash (os._exit)")
    faults.inject("env: pool worker hang")
    faults.inject("env: env raises")
    assert res.ran == 6 and not unparseable_files(out)
    trajs = load_trajectories(out)
    assert sorted(t.metadata["task_id"] for t in trajs) == sorted(fault_envs.TASKS)
    for t in trajs:
        kind = t.metadata["task_id"].split("-")[0]
        if kind == "ok":  # one env per worker: no collateral damage from a neighbour's crash
            assert t.success and "error" not in t.metadata, t.metadata
        else:
            assert not t.success and t.metadata["error"] == REASONS[kind]
            assert len(t.steps) == 2  # the step that failed is recorded, nothing after it
    assert restarts == 2  # the crashed and the hung worker were replaced; `raise` needs no restart


class _Server:
    """krill's env server (create_app) under uvicorn in a thread; stop() and start() on the same port."""

    def __init__(self, app: Any):
        self.app, self.port = app, 0
        self.start()

    def start(self) -> None:
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="critical")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "env server did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _OutageAt:
    """The real pool, except that the server is stopped just before step call `at` (mid-episode)."""

    def __init__(self, pool: Any, server: _Server, at: int):
        self.pool, self.server, self.at, self.calls = pool, server, at, 0

    def step(self, indices, actions):
        self.calls += 1
        if self.calls == self.at:
            self.server.stop()
        return self.pool.step(indices, actions)

    def __len__(self) -> int:
        return len(self.pool)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


def test_env_server_goes_away_mid_episode_and_comes_back(faults):
    server = _Server(create_app("flaky"))
    cfg = KrillConfig().override({"env.url": server.url, "env.name": "flaky"})
    pool = make_pool(cfg, "train", 1)  # a RemoteEnv talking to the server
    outage = _OutageAt(pool, server, at=5)  # episode 2, its second step
    seen = []

    def on_episode(traj) -> None:
        seen.append(traj)
        if traj.metadata.get("error"):
            server.start()  # the server comes back (same port, sessions gone)

    try:
        trajs = run_episodes(ExpertActor(), outage, ["ok-0", "ok-2", "ok-4", "ok-0"], on_episode=on_episode)
    finally:
        pool.close()
        server.stop()
    faults.inject("env: env server goes away mid-episode")
    assert len(trajs) == len(seen) == 4
    failed = trajs[1]
    assert not failed.success and failed.metadata["error"].startswith("env unavailable:")
    assert "unreachable" in failed.metadata["error"]
    assert [t.success for t in trajs] == [True, False, True, True]  # the run went on after the restart
    assert all("error" not in t.metadata for t in (trajs[0], trajs[2], trajs[3]))
