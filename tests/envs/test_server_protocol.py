"""The env server's HTTP protocol: fields, sessions, errors, limits and auth (Starlette TestClient).

Most tests use the Rust krill protocol (`session_handles=False`: sessions by X-Client-Id); the
handle tests at the end check krill's default, unguessable session handles."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from krill.envs.http_guard import check_bind, is_loopback
from krill.envs.server import create_app
from krill.errors import KrillError


@pytest.fixture
def client() -> TestClient:
    with TestClient(
        create_app("counter", "train", max_sessions=4, max_body=2_000, session_handles=False)
    ) as c:
        yield c


def _err(resp, status: int, needle: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == status
    assert needle in body["error"], body["error"]


def test_reset_and_step_fields(client):
    r = client.post("/reset", json={"task_id": "t1"})
    assert r.status_code == 200
    body = r.json()
    assert body["observation"].startswith("You are in a room")
    assert body["task_id"] == "t1"
    assert body["task_description"] == "make the counter show 3"
    assert body["task_category"] == "Pick"
    assert body["available_actions"] == ["inc", "dec", "look", "submit"]
    assert body["done"] is False and body["reward"] == 0
    s = client.post("/step", json={"action": "inc"}).json()
    assert set(s) >= {
        "observation",
        "reward",
        "done",
        "available_actions",
        "task_description",
        "task_category",
    }
    assert s["observation"] == "The counter shows 1." and s["valid"] is True and s["won"] is False
    bad = client.post("/step", json={"action": "fly"}).json()
    assert bad["observation"] == "Nothing happens." and bad["valid"] is False


def test_expert_plays_to_success(client):
    client.post("/reset", json={"task_id": "t2"})
    for _ in range(10):
        action = client.post("/expert", json={}).json()["action"]
        s = client.post("/step", json={"action": action}).json()
        if s["done"]:
            break
    assert s["won"] is True and s["reward"] == 10.0 and s["observation"] == "You win!"


def test_sessions_are_isolated_and_default_exists(client):
    client.post("/reset", json={"task_id": "t0"}, headers={"X-Client-Id": "a"})
    client.post("/reset", json={"task_id": "t4"}, headers={"X-Client-Id": "b"})
    client.post("/reset", json={"task_id": "t5"})  # default session
    for _ in range(3):
        client.post("/step", json={"action": "inc"}, headers={"X-Client-Id": "a"})
    b = client.post("/step", json={"action": "look"}, headers={"X-Client-Id": "b"}).json()
    d = client.post("/step", json={"action": "dec"}).json()
    assert b["observation"] == "The counter shows 0." and b["task_id"] == "t4"
    assert d["observation"] == "The counter shows -1." and d["task_id"] == "t5"
    assert client.get("/health").json()["sessions"] == 3


def test_split_is_chosen_per_reset(client):
    r = client.post("/reset", json={"task_id": "t12", "split": "test"}).json()
    assert r["task_id"] == "t12"
    assert client.get("/info", params={"split": "test"}).json()["task_ids"] == [
        f"t{k}" for k in range(10, 15)
    ]
    _err(client.post("/reset", json={"split": "nope"}), 422, "unknown split 'nope'")
    _err(client.post("/reset", json={"split": "../x"}), 422, "split name")


def test_bad_json_and_missing_fields(client):
    _err(client.post("/reset", content=b"{not json"), 400, "invalid JSON")
    _err(client.post("/reset", content=b"\xff\xfe"), 400, "not UTF-8")
    _err(client.post("/reset", content=b'{"task_id": NaN}'), 400, "NaN")
    _err(client.post("/reset", content=b"[1, 2]"), 422, "must be a JSON object")
    _err(client.post("/reset", json={"task_id": ["t1"]}), 422, "'task_id' must be a string")
    _err(client.post("/reset", json={"task_id": "t99"}), 422, "unknown task 't99'")
    client.post("/reset", json={})
    _err(client.post("/step", json={}), 422, "missing field 'action'")
    _err(client.post("/step", json={"action": 3}), 422, "'action' must be a string")
    _err(client.post("/step", json={"action": "inc"}, headers={"X-Client-Id": "bad id!"}), 400, "X-Client-Id")


def test_unknown_session_step_after_done_and_routes(client):
    _err(
        client.post("/step", json={"action": "inc"}, headers={"X-Client-Id": "ghost"}),
        404,
        "unknown session 'ghost'",
    )
    _err(client.post("/expert", json={}, headers={"X-Client-Id": "ghost"}), 404, "unknown session")
    client.post("/reset", json={"task_id": "t0"})
    client.post("/step", json={"action": "submit"})  # wrong answer: episode over
    _err(client.post("/step", json={"action": "inc"}), 409, "no episode in progress")
    _err(client.get("/nope"), 404, "Not Found")
    _err(client.get("/step"), 405, "Method Not Allowed")
    assert client.post("/close", json={}).json() == {"closed": True}
    _err(client.post("/step", json={"action": "inc"}), 404, "unknown session 'default'")


def test_request_size_limit(client):
    _err(client.post("/step", json={"action": "x" * 5_000}), 413, "exceeds the limit of 2000")

    def chunks():  # no Content-Length: the streamed body is still cut off
        for _ in range(10):
            yield b" " * 500

    _err(client.post("/reset", content=chunks()), 413, "exceeds the limit")


def test_lru_eviction_beyond_max_sessions(client):
    for c in ["c1", "c2", "c3", "c4"]:
        client.post("/reset", json={}, headers={"X-Client-Id": c})
    client.post("/step", json={"action": "inc"}, headers={"X-Client-Id": "c1"})  # c1 is now recent
    client.post("/reset", json={}, headers={"X-Client-Id": "c5"})  # evicts c2, the least recently used
    _err(client.post("/step", json={"action": "inc"}, headers={"X-Client-Id": "c2"}), 404, "evicted beyond 4")
    assert client.post("/step", json={"action": "inc"}, headers={"X-Client-Id": "c1"}).status_code == 200
    assert client.get("/health").json()["sessions"] == 4


def test_repeated_request_id_is_not_stepped_twice(client):
    client.post("/reset", json={"task_id": "t0"})
    h = {"X-Request-Id": "req-1"}
    first = client.post("/step", json={"action": "inc"}, headers=h).json()
    again = client.post("/step", json={"action": "inc"}, headers=h).json()
    assert first == again and first["observation"] == "The counter shows 1."
    assert client.post("/step", json={"action": "inc"}).json()["observation"] == "The counter shows 2."


def test_env_exception_is_500_and_session_recovers(client):
    client.post("/reset", json={"task_id": "t0"})
    _err(client.post("/step", json={"action": "raise"}), 500, "RuntimeError: counter env exploded")
    _err(client.post("/step", json={"action": "inc"}), 409, "no episode in progress")
    assert client.post("/reset", json={"task_id": "t0"}).status_code == 200
    assert client.post("/step", json={"action": "inc"}).json()["observation"] == "The counter shows 1."


def test_token_required_when_configured():
    with TestClient(create_app("counter", token="s3cret")) as c:
        _err(c.post("/reset", json={}), 401, "Bearer")
        _err(c.post("/reset", json={}, headers={"Authorization": "Bearer wrong"}), 401, "wrong token")
        _err(c.get("/info"), 401, "token")
        assert c.get("/health").status_code == 200  # liveness stays open, it reveals nothing
        ok = c.post("/reset", json={}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["task_id"] == "t0"


def test_bind_policy():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "tok")
    with pytest.raises(KrillError, match="refusing to bind .* '0.0.0.0' without a token"):
        check_bind("0.0.0.0", None)


def test_cross_site_requests_are_refused():
    with TestClient(create_app("counter", allowed_hosts=["127.0.0.1", "localhost"])) as c:
        _err(c.post("/reset", json={}, headers={"Host": "evil.example:8765"}), 400, "is not served here")
        _err(c.get("/health", headers={"Host": "evil.example"}), 400, "is not served here")
        ok = c.post("/reset", json={}, headers={"Host": "localhost:8765"})
        assert ok.status_code == 200
        # a browser may POST text/plain cross-site without a CORS preflight: refused
        _err(
            c.post(
                "/step",
                content=b'{"action": "inc"}',
                headers={"Host": "127.0.0.1", "Content-Type": "text/plain"},
            ),
            415,
            "application/json",
        )


def test_info_for_an_unknown_split_is_a_4xx(client):
    """Issue 24: /info?split=nope answered 500 where /reset answers 422."""
    _err(client.get("/info", params={"split": "nope"}), 422, "unknown split 'nope'")
    assert client.get("/info", params={"split": "test"}).status_code == 200


def test_a_request_id_reused_on_another_endpoint_is_not_answered_from_the_cache(client):
    """Issue 24: the reply cached for /reset under an id came back for a /step with that id."""
    h = {"X-Request-Id": "same-id"}
    reset = client.post("/reset", json={"task_id": "t0"}, headers=h).json()
    step = client.post("/step", json={"action": "inc"}, headers=h).json()
    assert step != reset and step["observation"] == "The counter shows 1."


def test_a_body_shorter_than_its_content_length_times_out_with_408():
    """Issue 24: such a request was waited on forever, holding its session's lock."""
    import socket

    from counter_env import live_server

    with live_server(create_app("counter", "train", body_timeout=0.5)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"task_id": '
            )
            reply = b""
            while b"request body" not in reply and (chunk := sock.recv(4096)):
                reply += chunk
            reply = reply.decode()
    assert reply.startswith("HTTP/1.1 408") and "request body not received within 0.5 s" in reply


def _slow_sockets(url: str, n: int) -> list:
    """n connections that send half a request line and stall."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    return socks


def _closed_by_server(sock) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_connections_whose_headers_stall_are_closed():
    """Issue 24: stalled headers held their slots forever (300 of them: every request got 503)."""
    import time

    import httpx
    from counter_env import live_server

    from krill.envs.http_guard import guarded_protocol

    app = create_app("counter", "train")
    with live_server(app, http=guarded_protocol(header_timeout=0.5), limit_concurrency=6) as url:
        slow = _slow_sockets(url, 6)  # every slot uvicorn allows
        time.sleep(1.0)
        assert all(_closed_by_server(s) for s in slow)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200  # slots free again
        for s in slow:
            s.close()


def test_one_client_cannot_hold_more_than_its_share_of_connections():
    from counter_env import live_server

    from krill.envs.http_guard import guarded_protocol

    protocol = guarded_protocol(max_per_client=3, cap_loopback=True)  # as a remote address is capped
    with live_server(create_app("counter", "train"), http=protocol) as url:
        held = _slow_sockets(url, 3)
        (extra,) = _slow_sockets(url, 1)
        assert _closed_by_server(extra)  # over the share: closed at once
        for s in held:
            s.settimeout(0.3)
            assert not _closed_by_server(s)  # within the share: still open
            s.close()
        extra.close()


def test_local_clients_share_no_cap_so_stalled_local_connections_do_not_starve_them():
    """Issue 33: every local client is 127.0.0.1, so 40 stalled local connections reset the health
    checks of another local client; loopback is not capped per address (the header timeout clears stalls)."""
    import httpx
    from counter_env import live_server

    from krill.envs.http_guard import guarded_protocol

    with live_server(create_app("counter", "train"), http=guarded_protocol(max_per_client=3)) as url:
        stalled = _slow_sockets(url, 40)
        ok = sum(httpx.get(f"{url}/health", timeout=5).status_code == 200 for _ in range(20))
        for s in stalled:
            s.close()
    assert ok == 20


@pytest.fixture
def handles() -> TestClient:
    with TestClient(create_app("counter", "train", max_sessions=2)) as c:
        yield c


def test_reset_issues_an_unguessable_handle_that_every_later_call_needs(handles):
    """Issue 24: sessions were addressed by the client-chosen X-Client-Id (guessable, shared default)."""
    a = handles.post("/reset", json={"task_id": "t0"}).json()["session"]
    b = handles.post("/reset", json={"task_id": "t0"}).json()["session"]
    assert a != b and len(a) >= 32
    _err(handles.post("/step", json={"action": "inc"}), 400, "missing X-Session")
    _err(
        handles.post("/step", json={"action": "inc"}, headers={"X-Session": "x" * 32}), 404, "unknown session"
    )
    # a client id names no session any more: only the handle reaches it
    _err(handles.post("/step", json={"action": "inc"}, headers={"X-Client-Id": "default"}), 400, "X-Session")
    step = handles.post("/step", json={"action": "inc"}, headers={"X-Session": a}).json()
    assert step["observation"] == "The counter shows 1."
    other = handles.post("/step", json={"action": "look"}, headers={"X-Session": b}).json()
    assert other["observation"] == "The counter shows 0."  # b was not touched by a's step
    again = handles.post("/reset", json={"task_id": "t1"}, headers={"X-Session": a}).json()
    assert again["session"] == a  # a reset with the handle keeps the session
    assert handles.post("/close", json={}, headers={"X-Session": a}).json() == {"closed": True}
    _err(
        handles.post("/step", json={"action": "inc"}, headers={"X-Session": a}), 404, "unknown session handle"
    )


def test_an_evicted_handle_gets_a_clear_error(handles):
    first = handles.post("/reset", json={}).json()["session"]
    for _ in range(2):  # max_sessions=2: the idle first session is evicted
        handles.post("/reset", json={})
    _err(handles.post("/step", json={"action": "inc"}, headers={"X-Session": first}), 404, "evicted beyond 2")
    _err(handles.post("/reset", json={}, headers={"X-Session": first}), 404, "unknown session handle")


def test_remote_env_follows_its_handle_across_eviction():
    from counter_env import live_server

    from krill.envs.remote import RemoteEnv

    with live_server(create_app("counter", max_sessions=1)) as url:
        env, intruder = RemoteEnv(url), RemoteEnv(url)
        env.reset("t0")
        intruder.reset("t1")  # evicts env's session (max_sessions=1)
        obs, _ = env.reset("t0")  # the stale handle is dropped and a new session opened
        assert obs.startswith("You are in a room") and env.step("inc")[0] == "The counter shows 1."
        env.close()
        intruder.close()


def test_a_bad_split_keeps_the_sessions_episode_and_names_no_server_path(client):
    """Issue 33: a /reset with a bad split ended the session's episode; 422s named cache paths."""
    client.post("/reset", json={"task_id": "t1"})
    client.post("/step", json={"action": "inc"})
    r = client.post("/reset", json={"split": "nope"})
    _err(r, 422, "unknown split 'nope'")
    assert "/" not in r.json()["error"].split("unknown split")[0]  # no file path before the message
    s = client.post("/step", json={"action": "inc"}).json()  # the episode goes on
    assert s["observation"] == "The counter shows 2."


def test_health_shows_the_session_count_only_with_the_token():
    with TestClient(create_app("counter", token="s3cret")) as c:
        assert "sessions" not in c.get("/health").json()
        assert c.get("/health", headers={"Authorization": "Bearer s3cret"}).json()["sessions"] == 0


def test_a_blank_token_is_refused():
    """Issue 33: `--token " "` bound 0.0.0.0 though no request could authenticate."""
    with pytest.raises(KrillError, match="token is blank"):
        check_bind("0.0.0.0", " ")
    with pytest.raises(KrillError, match="token is blank"):
        create_app("counter", token="  ")
