"""Batches of environments behind the `Pool` protocol: `SerialPool` (in-process) and `EnvPool` (processes).

Both are a `BasePool`, which checks the indices, maps failures to results and remembers each env's
last info; they differ only in `_run`, how one batch of commands reaches the envs. A failing
environment never stops a batch: its episode comes back with `done=True` and `info["error"]`
naming the reason ("worker crashed: ...", "worker hung: ...", "env error: ..."), and a reset that
failed that way carries `info["error"]` too; callers record such episodes as failed.
`EnvPool` spreads N envs round-robin over worker processes (spawn context), sends one message per
worker per call, waits on all pipes with a deadline, and restarts a worker that died or hung.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import multiprocessing as mp
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, Self

from krill.config import EnvConfig, KrillConfig
from krill.envs.base import ENVS, Env, Obs, Pool, StepResult, _import_builtin_envs, make_env
from krill.envs.remote import EnvUnavailable
from krill.errors import KrillError

# One env's answer to one command: ("ok", value) | ("user_error", msg): a KrillError in reset, the
# caller's mistake, raised | ("error", msg): the episode failed | ("broken", msg): the env raised
# unexpectedly and must not be reused.
Reply = tuple[str, Any]


def failed_step(reason: str, last_info: dict[str, Any] | None = None) -> StepResult:
    """The result of an episode that could not go on: done, no reward, `info["error"]` = reason."""
    info = {
        k: v for k, v in (last_info or {}).items() if k in ("task_id", "task_description", "task_category")
    }
    info.update(admissible_actions=[], won=False, valid=False, error=reason)
    return "", 0.0, True, info


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def call_env(env: Env, cmd: str, arg: Any) -> Reply:
    """Run one pool command ("reset", "step" or "expert") on one env; never raises (see `Reply`)."""
    try:
        if cmd == "reset":
            return "ok", env.reset(arg)
        if cmd == "step":
            return "ok", env.step(arg)
        if cmd == "expert":
            return "ok", env.expert_action()
        raise ValueError(f"unknown pool command {cmd!r}")
    except EnvUnavailable as exc:
        return "error", f"env unavailable: {exc}"
    except KrillError as exc:
        if cmd == "reset":
            return "user_error", str(exc)
        return "error", f"env error: {_describe(exc)}"
    except Exception as exc:
        return "broken", f"env error: {_describe(exc)}"


def close_quietly(env: Env) -> None:
    try:
        env.close()
    except Exception:
        pass  # closing is best effort: the env may be broken already


def _build_env(env_name: str, split: str, cfg: Any, env_kw: dict[str, Any]) -> Env:
    factory = ENVS.get(env_name)
    if factory is None:  # not imported yet: make_env imports the built-ins or names the unknown env
        return make_env(env_name, split, cfg=cfg, **env_kw)
    return factory(split=split, cfg=cfg, **env_kw)


class _Slot:
    """One env plus how to rebuild it after it raised (a broken env is never reused)."""

    def __init__(self, build: Callable[[], Env]):
        self._build = build
        self.env = build()

    def call(self, cmd: str, arg: Any) -> Reply:
        status, value = call_env(self.env, cmd, arg)
        if status == "broken":
            close_quietly(self.env)
            self.env = self._build()
            status = "error"
        return status, value


class BasePool:
    """What every pool shares; a variant implements `_run`, `task_ids` and `close`.

    `_run(cmd, [(index, arg)])` runs one batch and returns `{index: Reply}`; `reset`, `step` and
    `expert_actions` check the indices, call it once, and turn each reply into that env's result.
    """

    name: str  # the variant sets both from its first env
    max_steps: int

    def __init__(self, n: int):
        if n < 1:
            raise KrillError(f"an env pool needs at least 1 env, got {n}")
        self.n = n
        self._last_info: list[dict[str, Any] | None] = [None] * n  # for the ids a failed result keeps

    def _run(self, cmd: str, items: list[tuple[int, Any]]) -> dict[int, Reply]:
        raise NotImplementedError

    def task_ids(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def reset(self, indices: Sequence[int], task_ids: Sequence[str | None]) -> list[Obs]:
        return self._gather("reset", indices, task_ids)

    def reset_all(self, task_ids: Sequence[str | None]) -> list[Obs]:
        """Reset envs 0..len(task_ids)-1 to these tasks (None = the env's next task)."""
        return self.reset(range(len(task_ids)), task_ids)

    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[StepResult]:
        return self._gather("step", indices, actions)

    def expert_actions(self, indices: Sequence[int]) -> list[str | None]:
        return self._gather("expert", indices, [None] * len(indices))

    def _gather(self, cmd: str, indices: Sequence[int], args: Sequence[Any]) -> list[Any]:
        """Run `cmd` on every index in one `_run`, then map the replies to results in order."""
        indices = list(indices)
        if len(indices) != len(args):
            raise KrillError(f"{cmd}: {len(indices)} indices but {len(args)} arguments")
        for i in indices:
            if not 0 <= i < self.n:
                raise KrillError(f"{cmd}: env index {i} out of range 0..{self.n - 1}")
        if len(set(indices)) != len(indices):
            raise KrillError(f"{cmd}: duplicate env indices {indices}")
        replies = self._run(cmd, list(zip(indices, args, strict=True)))
        out, user_errors = [], []
        for i in indices:
            status, value = replies[i]
            if status == "user_error":
                user_errors.append(value)
            out.append(self._result(cmd, status, value, self._last_info[i]))
            if cmd in ("reset", "step") and status == "ok":
                self._last_info[i] = out[-1][-1]
        if user_errors:
            raise KrillError(user_errors[0])
        return out

    @staticmethod
    def _result(cmd: str, status: str, value: Any, last_info: dict[str, Any] | None) -> Any:
        if status == "ok":
            return value
        if cmd == "reset":
            return "", failed_step(value, last_info)[3]
        if cmd == "step":
            return failed_step(value, last_info)
        return None  # expert

    def __len__(self) -> int:
        return self.n

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialPool(BasePool):
    """N envs in this process, run one after another (cfg.env.workers == 0)."""

    def __init__(self, env_name: str, n: int, split: str = "train", cfg: Any = None, **env_kw: Any):
        super().__init__(n)
        build = functools.partial(_build_env, env_name, split, cfg, env_kw)
        self._slots = [_Slot(build) for _ in range(n)]
        self.name, self.max_steps = self._slots[0].env.name, self._slots[0].env.max_steps

    def task_ids(self) -> list[str]:
        return self._slots[0].env.task_ids()

    def _run(self, cmd: str, items: list[tuple[int, Any]]) -> dict[int, Reply]:
        return {i: self._slots[i].call(cmd, arg) for i, arg in items}

    def close(self) -> None:
        for s in self._slots:
            close_quietly(s.env)


# -- worker processes ---------------------------------------------------------------------------------
def _plugin_for(env_name: str) -> tuple[str, str] | None:
    """(module, file) registering the env, so a spawned worker imports just that (or a user env's file)."""
    _import_builtin_envs()
    factory = ENVS.get(env_name)
    mod = getattr(factory, "__module__", "") or ""
    file = getattr(sys.modules.get(mod), "__file__", None)
    return (mod, file) if factory is not None and file else None


def _load_plugin(plugin: tuple[str, str] | None) -> None:
    if plugin is None:
        return
    mod, file = plugin
    # Only the module that registers this env: importing every built-in env costs each worker ~2 s.
    spec = importlib.util.find_spec(mod) if mod != "__main__" else None
    if spec is not None and spec.origin == file:
        importlib.import_module(mod)
        return
    # Not importable under its name (a conftest, a script): load the same file under a private name.
    spec = importlib.util.spec_from_file_location(f"_krill_env_plugin_{abs(hash(file))}", file)
    if spec is None or spec.loader is None:
        raise KrillError(f"cannot load the module registering the env in a worker: {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def _worker_main(conn: Connection, spec: dict[str, Any]) -> None:
    """A worker: build its envs, then answer (cmd, [(local index, arg)]) messages until 'close'/EOF."""
    # Ctrl-C reaches the whole process group: the parent handles it and closes the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _load_plugin(spec["plugin"])
        build = functools.partial(_build_env, spec["env_name"], spec["split"], spec["cfg"], spec["env_kw"])
        slots = [_Slot(build) for _ in range(spec["n_local"])]
        env = slots[0].env
        conn.send(("ready", (env.name, env.max_steps, env.task_ids() if spec["want_tasks"] else None)))
    except BaseException as exc:
        conn.send(("failed", f"{_describe(exc)}\n{traceback.format_exc(limit=3)}"))
        return
    while True:
        try:
            cmd, items = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        if cmd == "close":
            for s in slots:
                close_quietly(s.env)
            conn.send(("closed", None))
            break
        conn.send(("ok", [(i, slots[i].call(cmd, arg)) for i, arg in items]))


class EnvPool(BasePool):
    """N envs over `workers` processes; see the module docstring. `timeout`: seconds per call."""

    def __init__(
        self,
        env_name: str,
        n: int,
        split: str = "train",
        cfg: Any = None,
        workers: int = 2,
        timeout: float = EnvConfig.model_fields["pool_timeout"].default,
        start_timeout: float = 600.0,
        **env_kw: Any,
    ):
        if n < 1 or workers < 1:
            raise KrillError(f"an env pool needs n >= 1 and workers >= 1, got n={n}, workers={workers}")
        super().__init__(n)
        self.workers = min(workers, n)
        self.timeout, self.start_timeout = timeout, start_timeout
        self.restarts = 0
        self._ctx = mp.get_context("spawn")
        self._spec = {
            "env_name": env_name, "split": split, "cfg": cfg, "env_kw": env_kw, "plugin": _plugin_for(env_name),
        }  # fmt: skip
        self._procs: list[Any] = [None] * self.workers
        self._conns: list[Connection | None] = [None] * self.workers
        self._lost: dict[int, str] = {}  # env index → why its episode is gone (its worker was restarted)
        pending = [self._spawn(w) for w in range(self.workers)]
        try:
            metas = [self._await_ready(w, conn) for w, conn in enumerate(pending)]
        except BaseException:
            self.close()
            raise
        self.name, self.max_steps, self._task_ids = metas[0]

    # placement: env i lives on worker i % W as its (i // W)-th env, so any prefix of envs is balanced
    def _owner(self, i: int) -> tuple[int, int]:
        return i % self.workers, i // self.workers

    def _spawn(self, w: int) -> Connection:
        parent, child = self._ctx.Pipe()
        n_local = len(range(w, self.n, self.workers))
        spec = {**self._spec, "n_local": n_local, "want_tasks": w == 0}
        proc = self._ctx.Process(target=_worker_main, args=(child, spec), daemon=True, name=f"krill-env-{w}")
        proc.start()
        child.close()
        self._procs[w], self._conns[w] = proc, parent
        return parent

    def _await_ready(self, w: int, conn: Connection) -> tuple[str, int, list[str] | None]:
        if not conn.poll(self.start_timeout):
            self._kill(w)
            raise KrillError(f"env pool worker {w} did not start within {self.start_timeout:.0f}s")
        try:
            status, value = conn.recv()
        except (EOFError, OSError):
            raise KrillError(f"env pool worker {w} died while starting ({self._exit_reason(w)})") from None
        if status != "ready":
            first = str(value).splitlines()[0]
            raise KrillError(f"env pool worker {w} could not build {self._spec['env_name']!r}: {first}")
        return value

    def _kill(self, w: int) -> None:
        proc, conn = self._procs[w], self._conns[w]
        if conn is not None:
            conn.close()
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(5)

    def _exit_reason(self, w: int) -> str:
        proc = self._procs[w]
        proc.join(2)
        code = proc.exitcode
        if code is None:
            return "no reply"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def _restart(self, w: int, reason: str) -> None:
        self._kill(w)
        self.restarts += 1
        for i in range(w, self.n, self.workers):
            self._lost[i] = reason
        self._await_ready(w, self._spawn(w))

    def _run(self, cmd: str, items: list[tuple[int, Any]]) -> dict[int, Reply]:
        """One fan-out: one message per involved worker, then wait for all of them until the deadline."""
        replies: dict[int, tuple[str, Any]] = {}
        by_worker: dict[int, list[tuple[int, int, Any]]] = {}
        for i, arg in items:
            if cmd != "reset" and i in self._lost:
                replies[i] = ("error", f"{self._lost[i]} (episode lost; reset this env)")
                continue
            w, local = self._owner(i)
            by_worker.setdefault(w, []).append((i, local, arg))
        failed: dict[int, str] = {}
        waiting: dict[Connection, int] = {}
        for w, its in by_worker.items():
            try:
                self._conns[w].send((cmd, [(local, arg) for _, local, arg in its]))
                waiting[self._conns[w]] = w
            except (OSError, ValueError):
                failed[w] = f"worker crashed: {self._exit_reason(w)}"
        deadline = time.monotonic() + self.timeout
        while waiting:
            ready = wait(list(waiting), timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            for conn in ready:
                w = waiting.pop(conn)
                try:
                    _, results = conn.recv()
                except (EOFError, OSError):
                    failed[w] = f"worker crashed: {self._exit_reason(w)}"
                    continue
                local_to_global = {local: i for i, local, _ in by_worker[w]}
                replies.update((local_to_global[local], r) for local, r in results)
        for w in waiting.values():
            failed[w] = f"worker hung: no reply within {self.timeout:g}s"
        for w, reason in failed.items():
            self._restart(w, reason)
            replies.update((i, ("error", reason)) for i, _, _ in by_worker[w])
        if cmd == "reset":
            for i, _ in items:
                if replies[i][0] == "ok":
                    self._lost.pop(i, None)
        return replies

    def task_ids(self) -> list[str]:
        return list(self._task_ids or [])

    def close(self) -> None:
        """Ask each worker to close its envs; kill any that does not answer within 5 s."""
        for w, conn in enumerate(self._conns):
            if conn is None:
                continue
            try:
                conn.send(("close", None))
                if conn.poll(5):
                    conn.recv()
                    self._procs[w].join(5)  # let it exit normally: killing it now would leak its semaphores
            except (OSError, EOFError, ValueError):
                pass
            self._kill(w)
            self._conns[w] = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def make_pool(cfg: KrillConfig, split: str, n: int) -> Pool:
    """The pool the config asks for: remote envs when env.url is set, processes when env.workers > 0."""
    name = "remote" if cfg.env.url else cfg.env.name
    if cfg.env.workers > 0:
        return EnvPool(name, n, split, cfg, workers=cfg.env.workers, timeout=cfg.env.pool_timeout)
    return SerialPool(name, n, split, cfg)
