"""1,000 mixed valid/invalid requests from 8 concurrent clients over real sockets: no 5xx, no dead session."""

from __future__ import annotations

import random
import threading
from collections import Counter

import httpx
import pytest
from counter_env import live_server, real_env_or_skip

from krill.envs.base import make_env
from krill.envs.remote import RemoteEnv
from krill.envs.server import create_app

N_CLIENTS, PER_CLIENT = 8, 125


def _requests(rng: random.Random) -> list[tuple[str, str, dict | None, bytes | None]]:
    """A shuffled mix of well-formed and malformed (method, path, json, raw body) requests."""
    kinds = [
        ("POST", "/reset", {"task_id": None}, None),
        ("POST", "/reset", {"task_id": "t3"}, None),
        ("POST", "/step", {"action": "inc"}, None),
        ("POST", "/step", {"action": "look"}, None),
        ("POST", "/step", {"action": "fly to the moon"}, None),  # invalid action: 200, valid False
        ("POST", "/expert", {}, None),
        ("POST", "/step", None, b"{broken"),  # 400
        ("POST", "/step", {"act": "inc"}, None),  # 422
        ("POST", "/step", {"action": ["inc"]}, None),  # 422
        ("POST", "/reset", {"task_id": "t404"}, None),  # 422 unknown task
        ("POST", "/step", None, b'{"action": "' + b"x" * 20_000 + b'"}'),  # 413
        ("GET", "/step", None, None),  # 405
        ("GET", "/nowhere", None, None),  # 404
        ("GET", "/health", None, None),
        ("GET", "/info", None, None),
    ]
    return [rng.choice(kinds) for _ in range(PER_CLIENT)]


def test_thousand_mixed_requests_from_eight_clients():
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    errors: list[str] = []

    def client(k: int, url: str) -> None:
        rng = random.Random(k)
        # clients 6 and 7 send no X-Client-Id: they share the default session concurrently
        headers = {"X-Client-Id": f"stress-{k}"} if k < 6 else {}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            for method, path, body, raw in _requests(rng):
                try:
                    resp = http.request(method, path, json=body, content=raw)
                except httpx.HTTPError as exc:
                    errors.append(f"client {k}: {type(exc).__name__}: {exc}")
                    continue
                if resp.status_code >= 400 and "error" not in resp.json():
                    errors.append(f"client {k}: {resp.status_code} without a JSON error: {resp.text[:80]}")
                with lock:
                    statuses[resp.status_code] += 1

    with live_server(create_app("counter", max_sessions=16, max_body=16_000, session_handles=False)) as url:
        threads = [threading.Thread(target=client, args=(k, url)) for k in range(N_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]
        assert sum(statuses.values()) == N_CLIENTS * PER_CLIENT
        assert not [s for s in statuses if s >= 500], statuses
        assert {200, 400, 404, 405, 413, 422} <= set(statuses), statuses
        # no crashed session: every client's session (and the default one) still plays to success
        for cid in [f"stress-{k}" for k in range(6)] + [None]:
            env = RemoteEnv(url, client_id=cid) if cid else _default_session_env(url)
            obs, info = env.reset("t1")
            done = False
            while not done:
                obs, reward, done, info = env.step(env.expert_action())
            assert info["won"] and reward == 10.0, (cid, obs)
        health = httpx.get(url + "/health").json()
        assert health["status"] == "ok" and health["sessions"] <= 16


def _default_session_env(url: str) -> RemoteEnv:
    env = RemoteEnv(url)
    env._http.headers.pop("X-Client-Id")  # talk to the default session like a header-less client
    return env


def test_concurrent_steps_on_one_session_serialise():
    with live_server(create_app("counter", session_handles=False)) as url:
        httpx.post(url + "/reset", json={"task_id": "t0"}, headers={"X-Client-Id": "shared"})
        seen: list[str] = []

        def one_step() -> None:
            r = httpx.post(
                url + "/step", json={"action": "inc"}, headers={"X-Client-Id": "shared"}, timeout=30
            )
            seen.append(r.json()["observation"])

        threads = [threading.Thread(target=one_step) for _ in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(seen) == sorted(f"The counter shows {k}." for k in range(1, 10))


def _expert_play(env, task: str) -> tuple[bool, list[str]]:
    obs, _ = env.reset(task)
    seen, done = [obs], False
    while not done:
        obs, _, done, info = env.step(env.expert_action())
        seen.append(obs)
    return bool(info["won"]), seen


@pytest.mark.parametrize("env_name", ["webshop", pytest.param("alfworld", marks=pytest.mark.slow)])
def test_concurrent_sessions_on_real_env_match_local_play(env_name):
    """4 clients play expert episodes at once (env calls run in threads): same episodes as in process."""
    cfg, split = real_env_or_skip(env_name)
    local = make_env(env_name, split, cfg=cfg)
    tasks = local.task_ids()[:8]
    want = {t: _expert_play(local, t) for t in tasks}
    local.close()
    got: dict[str, tuple[bool, list[str]]] = {}
    errors: list[str] = []

    def client(k: int, url: str) -> None:
        try:
            env = RemoteEnv(url, timeout=120)
            for t in tasks[k::4]:
                got[t] = _expert_play(env, t)
            env.close()
        except Exception as exc:  # reported below with the test's assertion
            errors.append(f"client {k}: {exc!r}")

    with live_server(create_app(env_name, split, cfg)) as url:
        threads = [threading.Thread(target=client, args=(k, url)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert not errors, errors
    differ = [t for t in tasks if got.get(t) != want[t]]
    assert not differ, [(t, got.get(t), want[t]) for t in differ[:2]]
    assert all(won for won, _ in got.values())
