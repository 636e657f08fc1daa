"""RemoteEnv against a real uvicorn server: expert episodes, auth, retries, outages, pools of remotes."""

from __future__ import annotations

import pytest
from counter_env import live_server, real_env_or_skip
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from krill.config import KrillConfig
from krill.envs.base import make_env
from krill.envs.pool import EnvPool, SerialPool, make_pool
from krill.envs.remote import EnvUnavailable, RemoteEnv
from krill.envs.server import create_app
from krill.errors import KrillError


def _expert_episode(env, task_id: str) -> tuple[bool, float, list[str]]:
    obs, info = env.reset(task_id)
    assert info["task_id"] == task_id and info["admissible_actions"]
    seen, total, done = [obs], 0.0, False
    while not done:
        obs, reward, done, info = env.step(env.expert_action())
        seen.append(obs)
        total += reward
    return info["won"], total, seen


def test_remote_expert_episode_matches_local_env():
    with live_server(create_app("counter")) as url:
        env = RemoteEnv(url)
        assert (env.name, env.max_steps, env.task_ids()) == ("counter", 10, [f"t{k}" for k in range(10)])
        won, total, seen = _expert_episode(env, "t5")
        env.close()
    local = make_env("counter")
    assert (won, total, seen) == _expert_episode(local, "t5")
    assert won and total == 10.0 and seen[-1] == "You win!"


def test_remote_split_and_token():
    with live_server(create_app("counter", token="tok")) as url:
        with pytest.raises(KrillError, match="HTTP 401: missing or wrong token"):
            RemoteEnv(url)
        env = RemoteEnv(url, token="tok", split="test")
        assert env.task_ids()[0] == "t10"
        assert env.reset("t11")[1]["task_description"] == "make the counter show 4"
        with pytest.raises(KrillError, match="HTTP 422: unknown task 't1' in split test"):
            env.reset("t1")
        env.close()


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(EnvUnavailable, match="unreachable after 2 attempts.*krill env serve"):
        RemoteEnv("http://127.0.0.1:9", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(KrillError, match="must start with http"):
        RemoteEnv("localhost:8000")


def test_server_goes_away_and_comes_back():
    with live_server(create_app("counter")) as url:
        env = RemoteEnv(url, retries=1, backoff=0.01, timeout=5)
        env.reset("t0")
        assert env.step("inc")[0] == "The counter shows 1."
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(EnvUnavailable, match="unreachable"):
        env.step("inc")
    with live_server(create_app("counter"), port=port):
        with pytest.raises(EnvUnavailable, match="lost this session"):
            env.step("inc")
        env.reset("t0")  # a new episode works on the restarted server
        assert env.step("inc")[0] == "The counter shows 1."
        env.close()


def test_slow_server_times_out_and_next_episode_uses_a_fresh_session():
    with live_server(create_app("counter")) as url:
        env = RemoteEnv(url, client_id="slowpoke", timeout=0.4, retries=1, backoff=0.01)
        env.reset("t0")
        with pytest.raises(EnvUnavailable, match=r"did not answer within 0.4s \(2 attempts, ReadTimeout\)"):
            env.step("nap")  # the old session stays locked while the nap runs on the server
        obs, info = env.reset("t1")
        assert env.client_id == "slowpoke.1" and info["task_id"] == "t1"
        assert env.step("inc")[0] == "The counter shows 1."
        env.close()


def test_retries_transient_errors_with_one_request_id():
    seen: list[tuple[str, str | None]] = []

    async def info(request: Request) -> JSONResponse:
        return JSONResponse({"env": "flaky", "max_steps": 3, "task_ids": ["a"]})

    async def step(request: Request) -> JSONResponse:
        seen.append((request.url.path, request.headers.get("x-request-id")))
        if len(seen) < 3:
            return JSONResponse({"error": "busy", "status": 503}, status_code=503)
        return JSONResponse({"observation": "ok", "reward": 1, "done": True, "available_actions": []})

    app = Starlette(routes=[Route("/info", info), Route("/step", step, methods=["POST"])])
    with live_server(app) as url:
        env = RemoteEnv(url, retries=3, backoff=0.01)
        obs, reward, done, info_ = env.step("x")
        assert (obs, reward, done) == ("ok", 1.0, True) and info_["valid"] is True
        assert len(seen) == 3 and len({rid for _, rid in seen}) == 1  # one logical call, retried
        seen.clear()
        env.retries = 1
        with pytest.raises(EnvUnavailable, match="kept failing: HTTP 503: busy"):
            env.step("x")
        assert env.expert_action() is None  # this server has no /expert
        env.close()


def test_make_env_and_make_pool_use_the_remote_url():
    with pytest.raises(KrillError, match="needs a server URL"):
        make_env("remote")
    with live_server(create_app("counter")) as url:
        cfg = KrillConfig().override({"env.url": url, "env.name": "counter"})
        assert make_env("remote", cfg=cfg).task_ids()[0] == "t0"
        serial = make_pool(cfg, "train", 3)
        assert isinstance(serial, SerialPool) and serial.name == "counter"
        with make_pool(cfg.override({"env.workers": 2}), "train", 3) as pool:
            assert isinstance(pool, EnvPool)
            for p in (serial, pool):  # each env is its own server session
                p.reset_all(["t0", "t1", "t2"])
                for _ in range(3):
                    res = p.step([0, 1, 2], p.expert_actions([0, 1, 2]))
                assert [r[0] for r in res] == ["You win!", "The counter shows 3.", "The counter shows 3."]
                assert p.step([1, 2], p.expert_actions([1, 2]))[0][3]["won"] is True
                after_done = p.step([0], ["inc"])[0]  # the server answers 409: the episode fails, no crash
                assert after_done[2] is True and "HTTP 409: no episode in progress" in after_done[3]["error"]
        serial.close()


@pytest.mark.parametrize("env_name", ["webshop", "alfworld"])
def test_remote_expert_episode_on_real_env(env_name):
    cfg, split = real_env_or_skip(env_name)
    with live_server(create_app(env_name, split, cfg)) as url:
        env = RemoteEnv(url)
        assert env.name == env_name
        task = env.task_ids()[0]
        won, total, seen = _expert_episode(env, task)
        env.close()
    assert won and total == 10.0
    local = make_env(env_name, split, cfg=cfg)
    assert (won, total, seen) == _expert_episode(local, task)  # HTTP changes nothing
    local.close()


def test_a_server_of_another_env_is_refused():
    """Issue 31/33: `--env-url <alfworld server> --env webshop` used to record ALFWorld games as WebShop."""
    from krill.envs.remote import make_remote_env

    with live_server(create_app("counter")) as url:
        with pytest.raises(KrillError, match="serves 'counter', but env.name is 'webshop'") as err:
            make_remote_env(cfg=KrillConfig().override({"env.url": url, "env.name": "webshop"}))
        assert err.value.where == "env.url"
        env = make_remote_env(cfg=KrillConfig().override({"env.url": url, "env.name": "counter"}))
        assert env.name == "counter"
        env.close()
