"""The summary table of benchmarks/gpu_check.sh, rebuilt from what its steps left (run after each step).

    python benchmarks/gpu_summary.py STEPS_TSV OUT_DIR WORK_DIR

Reads the step list (step, status, seconds, note), WORK_DIR/machine.json, OUT_DIR/log.txt (the rollout's
`BENCH` line, pytest's closing line) and OUT_DIR/gpu_tests.json; writes OUT_DIR/summary.md and
OUT_DIR/summary.json.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def sections(log: str) -> dict[str, str]:
    """The log's output per step: text after each `== NAME: cmd` line, up to the next step's."""
    out: dict[str, str] = {}
    name = None
    for line in log.splitlines():
        m = re.match(r"== ([\w-]+): ", line)
        if m:
            name = m.group(1)
            out.setdefault(name, "")
        elif name:
            out[name] += line + "\n"
    return out


def figure(step: str, text: str, walls: dict[str, float]) -> str:
    """The one-line result of a step, read from its output."""
    if step.startswith("gpu-tests"):
        closing = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", ln)]
        return closing[-1].strip("= ") if closing else ""
    benches = [json.loads(ln[6:]) for ln in text.splitlines() if ln.startswith("BENCH ")]
    if step.startswith("rollout-static") and benches:  # static vs growing: tok/s, then tensor ops per step
        return "; ".join(
            f"static {b['value']} vs growing {b['baseline']} {b['unit']} ({b['ratio']}x)" for b in benches
        )
    if step.startswith("rollout") and benches:
        b = benches[-1]
        return f"{b['value']} tok/s batched vs {b['baseline']} one at a time: {b['ratio']}x"
    if step.startswith("sweep") and benches:  # episode-steps/s per number of episodes in flight
        return "; ".join(
            f"{b['name'].split(',')[1].strip().split(' ')[0]} in flight {b['value']}" for b in benches
        )
    if step == "estimate" and benches:
        return "; ".join(f"{b['name']}: {b['value']} {b['unit']}" for b in benches)
    if step == "decode-overhead" and benches:
        return "; ".join(f"{b['value']} vs {b['baseline']} ms/step ({b['ratio']}x)" for b in benches)
    if step in ("train-cpu", "train-real-cpu"):
        gpu = walls.get(step.replace("cpu", "gpu"))
        cpu = walls.get(step)
        if gpu and cpu:
            return f"CPU wall / GPU wall = {cpu / gpu:.2f}x"
    return ""


def main() -> None:
    steps_tsv, out_dir, work_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    rows = [ln.split("\t") for ln in steps_tsv.read_text().splitlines() if ln.strip()]
    machine_path = work_dir / "machine.json"
    machine = json.loads(machine_path.read_text()) if machine_path.exists() else {}
    log_path = out_dir / "log.txt"
    parts = sections(log_path.read_text(errors="replace")) if log_path.exists() else {}
    walls = {r[0]: float(r[2]) for r in rows if r[1] == "ok" and r[2]}
    tests_path = out_dir / "gpu_tests.json"
    tests = json.loads(tests_path.read_text()) if tests_path.exists() else {}

    table = [{"step": r[0], "status": r[1], "wall_s": float(r[2]) if r[2] else None, "note": r[3],
              "figure": figure(r[0], parts.get(r[0], ""), walls)} for r in rows]  # fmt: skip
    (out_dir / "summary.json").write_text(
        json.dumps({"machine": machine, "steps": table, "gpu_tests": tests}, indent=2)
    )

    where = machine.get("gpu") or "no GPU (dry run)"
    lines = [
        f"machine: {where}, {machine.get('gpu_memory_gib') or '-'} GiB; {machine.get('cpu_cores')} CPU cores; "
        f"Python {machine.get('python')}, torch {machine.get('torch')}, CUDA {machine.get('cuda')}, "
        f"transformers {machine.get('transformers')}, peft {machine.get('peft')}, accelerate {machine.get('accelerate')}",
        "",
        "| step | status | wall s | figure | note |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {t['step']} | {t['status']} | {t['wall_s'] if t['wall_s'] is not None else ''} | "
              f"{t['figure']} | {t['note']} |" for t in table]  # fmt: skip
    if tests:
        lines += ["", "What the GPU tests measured:", ""]
        for name, figures in tests.items():
            shown = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
            )
            lines.append(f"- `{name}`: {shown}")
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
