"""LLM-teacher distillation speed: concurrency 1 vs 16 against a local server, plus a cached re-run.

    python benchmarks/bench_distill.py                          # 100 trajectories, 0.2 s per answer
    python benchmarks/bench_distill.py --n 40 --delay 0.1
    python benchmarks/bench_distill.py --trajectories data/trajectories.json   # + token compression on them

A local OpenAI-compatible server (`krill.testing.openai_server`) answers every prompt with valid
skill JSON after a fixed delay, standing in for a slow remote teacher. With one trajectory per call
(100 calls), the wall time at concurrency 1 is ~100 × delay; at 16 it should be ≥ 10× shorter.
The re-run reuses the same work dir, so every answer comes from the response cache (0 requests).
It also prints the token compression of an analytic bank (skills vs raw-trajectory memory).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KRILL_RETRY_INITIAL", "0.05")

from krill.config import KrillConfig  # noqa: E402
from krill.formats.trajectories import load_trajectories  # noqa: E402
from krill.schema import Trajectory  # noqa: E402
from krill.skills.distill import distill, make_teacher  # noqa: E402
from krill.testing.openai_server import FakeOpenAIServer  # noqa: E402

TAG = re.compile(r'<trajectory id="([^"]+)" category="([^"]+)">')


def answer(messages) -> str:
    """Valid teacher JSON: one skill per trajectory in the prompt, citing it."""
    found = TAG.findall(messages[-1]["content"] if messages else "")
    skills = [{"name": f"{cat} pattern {tid}", "principle": f"What worked in {tid} for {cat} tasks.",
               "when_to_apply": f"{cat} tasks", "category": cat, "source_trajectory_ids": [tid]}
              for tid, cat in found]  # fmt: skip
    return json.dumps({"skills": skills, "mistakes": []})


def trajectories(n: int, path: str | None) -> list[Trajectory]:
    """`n` trajectories: from `path`, else the example trajectories repeated under fresh ids."""
    from krill.data import example_trajectories_path

    base = load_trajectories(path or example_trajectories_path())
    return [base[i % len(base)].model_copy(update={"id": f"bench-{i}"}) for i in range(n)]


class Embed:
    name = "hash"

    def __init__(self):
        from krill.models.embedder import HashEmbedder

        self.inner = HashEmbedder(256)

    def embed(self, texts):
        return self.inner.embed(texts)


def timed_distill(trajs, srv, concurrency: int, work: Path) -> tuple[float, object]:
    cfg = KrillConfig().override(
        {"model.teacher.backend": "llm", "model.teacher.model": "fake", "model.teacher.api_base": srv.base_url,
         "distill.trajectories_per_call": 1, "distill.concurrency": concurrency}
    )  # fmt: skip
    t0 = time.perf_counter()
    _, report = distill(trajs, make_teacher(cfg, work), Embed(), cfg)
    return time.perf_counter() - t0, report


def bench(name: str, value: float, unit: str, **extra) -> None:
    print("BENCH " + json.dumps({"name": name, "value": round(value, 4), "unit": unit, **extra}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="trajectories (one teacher call each)")
    ap.add_argument("--delay", type=float, default=0.2, help="seconds the server takes per answer")
    ap.add_argument("--trajectories", help="trajectory file (default: krill's example trajectories)")
    args = ap.parse_args()
    trajs = trajectories(args.n, args.trajectories)
    with FakeOpenAIServer(answer, delay=args.delay) as srv, tempfile.TemporaryDirectory() as tmp:
        t1, r1 = timed_distill(trajs, srv, 1, Path(tmp) / "c1")
        t16, r16 = timed_distill(trajs, srv, 16, Path(tmp) / "c16")
        before = srv.stats["requests"]
        tre, rre = timed_distill(trajs, srv, 16, Path(tmp) / "c16")
        again = srv.stats["requests"] - before
    print(f"{args.n} trajectories, 1 per call, server delay {args.delay:.2f} s")
    print(f"concurrency 1 : {t1:6.2f} s  ({r1.teacher_calls} calls)")
    print(f"concurrency 16: {t16:6.2f} s  ({r16.teacher_calls} calls)  speed-up {t1 / t16:.1f}x")
    print(f"re-run (cache): {tre:6.2f} s  ({rre.cache_hits} cache hits, {again} requests)")
    bench("distill_c1_wall", t1, "s")
    bench("distill_c16_wall", t16, "s", baseline=round(t1, 4), ratio=round(t1 / t16, 2))
    bench("distill_rerun_wall", tre, "s", requests=again)
    compression(args.trajectories)


def compression(path: str | None) -> None:
    """Token compression of an analytic bank built from the same trajectories."""
    from krill.skills.analytic import AnalyticTeacher

    from krill.data import example_trajectories_path
    from krill.evaluate.compression import compression_report

    trajs = load_trajectories(path or example_trajectories_path())
    cfg = KrillConfig()
    bank, _ = distill(trajs, AnalyticTeacher(cfg), Embed(), cfg)
    rep = compression_report(bank, trajs, cfg, embedder=Embed())
    print(f"token compression on {len(trajs)} trajectories ({rep['tasks']} tasks, {rep['tokenizer']}): "
          f"skills {rep['skill_tokens_per_task']:.0f} vs raw top-{rep['raw_trajectories_per_task']} "
          f"trajectories {rep['raw_tokens_per_task']:.0f} tokens per task → {rep['percent_fewer']:.1f}% fewer")  # fmt: skip
    bench("skill_context_tokens_per_task", rep["skill_tokens_per_task"], "tokens",
          baseline=round(rep["raw_tokens_per_task"], 1), ratio=round(rep["ratio"], 3))  # fmt: skip


if __name__ == "__main__":
    main()
