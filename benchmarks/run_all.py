"""Run every benchmark script and rewrite docs/benchmarks.md with their figures.

    python benchmarks/run_all.py            # everything, including a `krill train --preset quick` timing
    python benchmarks/run_all.py --fast     # skip the end-to-end train timing

Each script prints human-readable lines and may print `BENCH {json}` lines
({"name", "value", "unit", "baseline"?, "ratio"?}); those become the summary table, and each
script's full output is kept below it, so every figure sits next to the command that produced it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = [
    "bench_envs.py",
    "bench_retrieval.py",
    "bench_rollout.py",
    "bench_distill.py",
    "bench_train_memory.py",
    "bench_adapter_merge.py",
    "bench_decode_overhead.py",
    "bench_stop_check.py",
    "bench_conversation.py",
    "bench_compile.py",
]


def machine() -> str:
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        tv = torch.__version__
    except ImportError:  # pragma: no cover
        gpu, tv = "torch missing", "-"
    return f"{platform.platform()}, {os.cpu_count()} CPU cores, {gpu}, Python {platform.python_version()}, torch {tv}"


def run(cmd: list[str], timeout: int) -> tuple[str, float, int]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        out, rc = proc.stdout + proc.stderr[-2000:], proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, rc = f"{exc.stdout or ''}\n(timed out after {timeout}s)", 124
    return out, time.perf_counter() - t0, rc


def bench_rows(output: str) -> list[dict]:
    rows = []
    for line in output.splitlines():
        if line.startswith("BENCH "):
            try:
                rows.append(json.loads(line[6:]))
            except json.JSONDecodeError:
                pass
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="skip the end-to-end train timing")
    ap.add_argument("--timeout", type=int, default=1800)
    args = ap.parse_args()
    sections, table = [], []
    for script in SCRIPTS:
        path = ROOT / "benchmarks" / script
        if not path.exists():
            sections.append((script, "(script missing)", 0.0, 1))
            continue
        out, secs, rc = run([sys.executable, str(path)], args.timeout)
        sections.append((f"python benchmarks/{script}", out, secs, rc))
        table += [{**r, "script": script} for r in bench_rows(out)]
        print(f"{script}: {secs:.0f}s rc={rc}", file=sys.stderr)
    if not args.fast:
        run_dir = ROOT / "runs" / "bench-quick"
        cmd = [sys.executable, "-m", "krill", "train", "--preset", "quick", "--out", str(run_dir)]
        out, secs, rc = run(cmd, 3600)
        sections.append((" ".join(cmd), out[-4000:], secs, rc))
        table.append(
            {
                "name": "krill train --preset quick (end to end)",
                "value": round(secs, 1),
                "unit": "s",
                "script": "-",
            }
        )
    write_doc(sections, table)


GPU_HEADING = "## GPU check"  # written from gpu_check.sh runs on a GPU machine; kept as it is


def write_doc(sections, table) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from krill.io import atomic_write_text

    doc = ROOT / "docs" / "benchmarks.md"
    old = doc.read_text() if doc.exists() else ""
    kept = old[old.index(GPU_HEADING) :].rstrip() if GPU_HEADING in old else ""

    lines = ["# Benchmarks", "", f"Machine: {machine()}", "",
             f"Regenerate with `python benchmarks/run_all.py` (last run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
             "GPU figures (one H100) are in the last section, from `benchmarks/gpu_check.sh`." if kept else "",
             "", "| benchmark | figure | naive / baseline | ratio | script |", "|---|---|---|---|---|"]  # fmt: skip
    for r in table:
        base = r.get("baseline", "")
        ratio = f"{r['ratio']:.1f}×" if isinstance(r.get("ratio"), int | float) else ""
        lines.append(f"| {r['name']} | {r['value']} {r.get('unit', '')} | {base} | {ratio} | {r['script']} |")
    for cmd, out, secs, rc in sections:
        lines += ["", f"## `{cmd}`", "", f"{secs:.0f} s, exit {rc}", "", "```", out.strip()[-6000:], "```"]
    if kept:
        lines += ["", kept]
    atomic_write_text(doc, "\n".join(lines) + "\n")
    print(f"wrote {ROOT / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
