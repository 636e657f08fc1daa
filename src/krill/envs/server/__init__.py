"""Serve any registered env over HTTP with the Rust krill protocol (Starlette app, uvicorn server).

    POST /reset  {"task_id": str | null,  → observation, task_description, task_category,
                  "split"?: str}           available_actions, task_id, done=false, reward=0
                                            (split defaults to the one being served)
    POST /step   {"action": str}          → observation, reward, done, available_actions,
                                            task_description, task_category, won, valid
    POST /expert {}                       → {"action": the env expert's next action | null}
    POST /close  {}                       → ends the caller's session
    GET  /info?split=S                    → env, split, max_steps, task_ids
    GET  /health                          → status (no auth: liveness probes)

Every reply also carries `info`, the env's full info dict. The pieces, one concern each:
`krill.envs.wire` (bodies, replies, headers; shared with the client, `krill.envs.remote`),
`sessions` (one env per session, handles or client ids, LRU cap, retried requests), `app`
(the routes and the checks each request passes), `serving` (bind and run), and
`krill.envs.http_guard` (where it may bind, connection guards).
"""

from krill.envs.server.app import create_app
from krill.envs.server.serving import serve

__all__ = ["create_app", "serve"]
