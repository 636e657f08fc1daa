"""`build_report(run_dir, out_dir)`: one self-contained HTML page + PNG figures for a run directory.

Reads what `krill train` writes: `config.yaml` (what ran), `rl/metrics.jsonl` (per-iteration RL logs),
`banks/cycle_K.json` (bank versions), `eval/before.json` + `eval/after.json`; or what `krill rl` writes
(`metrics.jsonl`, `banks/`) in its output folder. Every string from banks and trajectories is
HTML-escaped; figures are inlined as data URIs, so the page opens with no server and no internet.
The RL learning curve and the lines beside it are `krill.evaluate.report_rl`.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import yaml
from matplotlib.ticker import MaxNLocator

from krill.errors import KrillError
from krill.evaluate.figures import _img, _plain, _save, iteration_axis, plt, skipped_iterations  # noqa: F401
from krill.io import atomic_write_text, read_jsonl, read_text
from krill.schema import SkillBank


def _cycle_num(p: Path) -> int:
    m = re.search(r"cycle_(\d+)", p.stem)
    return int(m.group(1)) if m else -1


def load_run(run_dir: Path) -> dict[str, Any]:
    """What a report needs from a `krill train` run directory or a `krill rl` output folder; a folder
    that is neither (no `config.yaml`) is an error."""
    import os

    from krill.evaluate.eval import load_eval
    from krill.formats.banks import load_bank

    if not run_dir.is_dir():
        raise KrillError("run directory not found", path=run_dir)
    if not os.access(run_dir, os.R_OK | os.X_OK):  # a folder we may not read: say so, not PermissionError
        raise KrillError("cannot read the run directory (permission denied)", path=run_dir)
    if not (run_dir / "config.yaml").exists():
        raise KrillError(
            "not a krill run (no config.yaml): give the folder `krill train --out` or `krill rl --out` wrote",
            path=run_dir,
        )
    metrics: list[dict] = []
    for cand in (run_dir / "rl" / "metrics.jsonl", run_dir / "metrics.jsonl"):
        if cand.exists():
            metrics = [m for m in read_jsonl(cand, repair_tail=True) if isinstance(m, dict)]
            if any("iteration" in m for m in metrics):
                break
    banks = sorted((run_dir / "banks").glob("cycle_*.json"), key=_cycle_num)
    if not banks and (run_dir.parent / "config.yaml").exists():  # the rl/ folder of a `krill train` run
        banks = sorted((run_dir.parent / "banks").glob("cycle_*.json"), key=_cycle_num)
    eval_paths = {name: run_dir / "eval" / f"{name}.json" for name in ("before", "after")
                  if (run_dir / "eval" / f"{name}.json").exists()}  # fmt: skip
    evals = {name: load_eval(path) for name, path in eval_paths.items()}
    if not (metrics or banks or evals):
        raise KrillError(
            "nothing to report yet: no rl/metrics.jsonl, banks/cycle_*.json or eval/*.json", path=run_dir
        )
    config = read_yaml(run_dir / "config.yaml")
    return {
        "metrics": [m for m in metrics if "iteration" in m],
        "banks": [(_cycle_num(p), load_bank(p)) for p in banks],
        "evals": evals,
        "eval_paths": eval_paths,
        "config": config,
        "facts": run_facts(config, evals, run_dir, metrics),
    }


def run_facts(cfg: dict[str, Any], evals: dict[str, dict], run_dir: Path | None = None,
              metrics: list[dict] = ()) -> dict[str, str]:  # fmt: skip
    """What ran, for the page's header: model (and the adapter trained), preset, the RL tasks, eval
    size, seed."""
    policy = cfg.get("model", {}).get("policy", {})
    env = cfg.get("env", {}).get("name", "?")
    ev = next(iter(evals.values()), None)
    rl = cfg.get("rl", {})
    listed = rl.get("tasks") or []
    iterations = len({m["iteration"] for m in metrics if "iteration" in m})
    per_iteration = max(1, int(rl.get("batch_size", 1)) // max(1, int(rl.get("group_size", 1))))
    drawn = (
        f"{per_iteration} train tasks per RL iteration × {iterations} iterations"
        if iterations
        else "no RL yet"
    )
    adapter = _trained_adapter(run_dir) if run_dir else None
    return {
        "model": f"{policy.get('model', '?')} ({policy.get('backend', '?')})"
        + (f" + adapter {adapter}" if adapter else ""),
        "preset": str(cfg.get("preset") or "none"),
        "tasks": f"{env}, "
        + (f"{drawn} (from {len(listed)} listed tasks)" if listed else f"{drawn} (from the train split)"),
        "eval": f"{ev['results']['all']['episodes']} episodes of {ev['split']}"
        if ev and "all" in ev["results"]
        else "none",
        "seed": str(cfg.get("seed", 0)),
    }


def _trained_adapter(run_dir: Path) -> str | None:
    """The run's final adapter, relative to the run (`rl/adapter`, `adapter`, `sft`, or the folder itself)."""
    for rel in ("rl/adapter", "adapter", "sft", "."):
        if (run_dir / rel / "adapter_config.json").is_file():
            return rel
    return None


def read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(read_text(path)) or {}
    return data if isinstance(data, dict) else {}


def _series(metrics: list[dict], pattern: str) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {}
    rx = re.compile(pattern)
    for m in metrics:
        for k, v in m.items():
            if rx.fullmatch(k) and isinstance(v, int | float):
                xs, ys = out.setdefault(k, ([], []))
                xs.append(int(m["iteration"]))
                ys.append(float(v))
    return out


def _line_plot(series: dict, title: str, ylabel: str, path: Path, skipped: list[int] = ()) -> Path | None:
    if not series and not skipped:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    if not series:  # every iteration skipped its update: say so where the curve would be
        ax.text(0.5, 0.5, "no update yet: in every iteration, each group's\nrollouts had the same reward",
                ha="center", va="center", transform=ax.transAxes, color="0.4")  # fmt: skip
    for key, (xs, ys) in sorted(series.items()):
        ax.plot(xs, ys, marker="o", ms=3, label=_plain(key.split("/")[-1]))
    for k, it in enumerate(skipped):
        ax.axvline(it, color="0.6", ls=":", lw=1, label="update skipped (equal rewards)" if k == 0 else None)
    ax.set_title(title)
    iteration_axis(ax, [x for xs, _ in series.values() for x in xs] + list(skipped))
    ys = [y for _, vals in series.values() for y in vals]
    if ys and max(ys) == min(ys):  # one dot (or a flat line): a round span around it, not ±0.01 ticks
        half = abs(ys[0]) or 1.0
        ax.set_ylim(ys[0] - half, ys[0] + half)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def _bank_plot(banks: list[tuple[int, SkillBank]], path: Path) -> Path | None:
    if not banks:
        return None
    cycles = [c for c, _ in banks]
    general = [len(b.general_skills) for _, b in banks]
    specific = [len(b) - len(b.general_skills) for _, b in banks]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.bar(cycles, general, label="general")
    ax.bar(cycles, specific, bottom=general, label="task-specific")
    ax.set_title("Skill bank size per evolution cycle")
    ax.set_xlabel("evolution cycle")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("skills")
    ax.legend()
    return _save(fig, path)


def _eval_plot(evals: dict[str, dict], path: Path) -> Path | None:
    if not evals:
        return None
    cats = sorted({c for e in evals.values() for c in e["results"]} - {"all"}) + ["all"]
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    width = 0.8 / len(evals)
    for i, (name, e) in enumerate(evals.items()):
        rates, lo, hi = [], [], []
        for c in cats:
            r = e["results"].get(c)
            rates.append(100 * r["success_rate"] if r else 0)
            lo.append(max(0.0, 100 * (r["success_rate"] - r["ci_low"])) if r else 0)
            hi.append(max(0.0, 100 * (r["ci_high"] - r["success_rate"])) if r else 0)
        xs = [j + i * width for j in range(len(cats))]
        bars = ax.bar(xs, rates, width, yerr=[lo, hi], capsize=3, label=_plain(name))
        # a label on every bar: a 0 % bar has no height, but it must still be seen
        ax.bar_label(bars, labels=[f"{r:.0f}%" for r in rates], fontsize=7, padding=2)
    ticks = [j + width * (len(evals) - 1) / 2 for j in range(len(cats))]
    ax.set_xticks(ticks, [_plain(c) for c in cats], rotation=20)
    ax.set_ylabel("success % (95% Wilson CI)")
    ax.set_ylim(0, 105)
    ax.set_title("Held-out success per category")
    ax.legend()
    return _save(fig, path)


# the learning curves: figure name → (metric key pattern, title, y label)
CURVES = {
    "reward": (r"rollout/reward(/.*)?", "Mean episode reward", "reward"),
    "success": (r"charts/success_rate(/.*)?", "Training success rate", "success"),
    "loss": (r"losses/(loss|policy_loss)", "GRPO loss", "loss"),
    "kl": (r"losses/kl", "KL to the reference policy", "KL (k3)"),
    "entropy": (r"losses/entropy", "Policy entropy", "nats per token"),
}


def make_figures(run: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    from krill.evaluate.report_rl import rl_curve  # it draws with this module's helpers

    m, skipped = run["metrics"], skipped_iterations(run["metrics"])
    figs: dict[str, Path | None] = {}
    if len({r["iteration"] for r in m}) >= 2:  # one iteration is a sentence (`_one_iteration`), not a figure
        kl_used = float(run.get("config", {}).get("rl", {}).get("kl_coef", 1.0) or 0.0) > 0
        figs = {name: _line_plot(_series(m, pattern), title, ylabel, out_dir / f"{name}.png", skipped)
                for name, (pattern, title, ylabel) in CURVES.items() if kl_used or name != "kl"}  # fmt: skip
        figs["rl"] = rl_curve(m, out_dir / "rl_curve.png")
    figs["bank"] = _bank_plot(run["banks"], out_dir / "bank_size.png")
    figs["eval"] = _eval_plot(run["evals"], out_dir / "eval.png")
    return {k: v for k, v in figs.items() if v is not None}


def _one_iteration(metrics: list[dict]) -> str:
    """What a run with fewer than two RL iterations says instead of curves of one dot."""
    if not metrics:
        return "<p>No RL iterations in this run.</p>"
    m = metrics[-1]
    rate, n = m.get("charts/success_rate"), m.get("rollout/episodes")
    won = (
        f"{round(rate * n)} of {int(n)} rollouts won"
        if isinstance(rate, int | float) and isinstance(n, int | float)
        else "no success logged"
    )
    updated = (
        "the weights were updated"
        if not m.get("update/skipped")
        else "the update was skipped (equal rewards)"
    )
    return f"<p>One RL iteration: {won}; {updated}. Curves need at least two iterations.</p>"


def _bank_rows(bank: SkillBank, added_at: dict[str, int]) -> str:
    e = html.escape
    rows = []
    for s in bank.all_skills():
        rows.append(
            f"<tr><td><code>{e(s.short_id)}</code></td><td>{e(s.category)}</td><td>{e(s.name)}</td>"
            f"<td>{e(s.principle)}</td><td>{e(s.when_to_apply)}</td><td>{added_at.get(s.id, 0)}</td></tr>"
        )
    return "\n".join(rows)


def evolution_steps(banks: list[tuple[int, SkillBank]]) -> list[tuple[int, dict[str, list[str]]]]:
    """(cycle, {category: names of the skills it added}) for each cycle after the first bank."""
    out = []
    for (_, prev), (cycle, cur) in zip(banks, banks[1:], strict=False):
        before = {s.id for s in prev.all_skills()}
        added: dict[str, list[str]] = {}
        for s in cur.all_skills():
            if s.id not in before:
                added.setdefault(s.category, []).append(s.bare_name)  # listed under its category
        out.append((cycle, added))
    return out


def _evolution_list(banks: list[tuple[int, SkillBank]]) -> str:
    e = html.escape
    if not banks:
        return "<p>No bank versions in this run.</p>"
    first, bank0 = banks[0]
    items = [f"<li>cycle {first}: the bank RL began with, {len(bank0)} skills</li>"]
    for cycle, added in evolution_steps(banks):
        n = sum(len(v) for v in added.values())
        parts = "; ".join(f"{e(c)}: {', '.join(e(x) for x in names)}" for c, names in sorted(added.items()))
        items.append(f"<li>cycle {cycle}: +{n}{' — ' + parts if parts else ''}</li>")
    return "<ul>" + "".join(items) + "</ul>"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>krill report — {title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}}
h1{{font-size:1.6em}} figure{{display:inline-block;margin:.5em}} img{{max-width:520px;border:1px solid #ddd}}
table{{border-collapse:collapse;font-size:.85em;width:100%}} td,th{{border:1px solid #ddd;padding:4px;vertical-align:top}}
th{{background:#f3f3f3}} #q{{width:40%;padding:6px;margin:.5em 0}}
</style></head><body>
<h1>krill run report: {title}</h1>
<p class="facts">{facts}</p>
<h2>Phases</h2>{phases}
<h2>Held-out evaluation</h2>{eval_fig}{eval_table}
<h2>Skill-augmented SFT</h2>{sft}
<h2>RL learning curve</h2>{rl_curve}{rl_summary}
<h2>Learning curves</h2>{curves}
<h2>Skill usage in the held-out episodes</h2>{usage}
<h2>Example episodes</h2>{examples}
<h2>Skill bank evolution</h2>{bank_fig}{evolution}
<h2>Skill bank ({n_skills} skills)</h2>
<input id="q" placeholder="search skills…" oninput="filterRows()">
<table id="bank"><thead><tr><th>id</th><th>category</th><th>name</th><th>principle</th><th>when to apply</th><th>cycle</th></tr></thead>
<tbody>{bank_rows}</tbody></table>
<script>
function filterRows(){{var q=document.getElementById('q').value.toLowerCase();
for(const r of document.querySelectorAll('#bank tbody tr')){{r.style.display=r.textContent.toLowerCase().includes(q)?'':'none';}}}}
</script></body></html>
"""


def _eval_table(evals: dict[str, dict]) -> str:
    if not evals:
        return "<p>No eval results in this run.</p>"
    names = list(evals)
    cats = sorted({c for e in evals.values() for c in e["results"]} - {"all"}) + ["all"]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for c in cats:
        cells = []
        for n in names:
            r = evals[n]["results"].get(c)
            cells.append(
                "<td>—</td>" if r is None else
                f"<td>{100 * r['success_rate']:.1f}% [{100 * r['ci_low']:.0f}, {100 * r['ci_high']:.0f}] (n={r['episodes']})</td>"
            )  # fmt: skip
        rows.append(f"<tr><td>{html.escape(c)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>category</th>{head}</tr>{''.join(rows)}</table>"


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write `out_dir/index.html` (+ PNGs) for `run_dir`; returns the HTML path."""
    from krill.evaluate.report_rl import rl_summary_html
    from krill.evaluate.report_run import run_sections

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    run = load_run(run_dir)
    figs = make_figures(run, out_dir)
    bank = run["banks"][-1][1] if run["banks"] else SkillBank()
    added_at = {h.skill_id: h.evolution_cycle for h in bank.history}
    curves = "".join(_img(figs[k], CURVES[k][1]) for k in CURVES if k in figs) or _one_iteration(
        run["metrics"]
    )
    sections = run_sections(run_dir, run["evals"], run["eval_paths"], bank, out_dir)
    page = PAGE.format(
        **sections,
        title=html.escape(run_dir.name),
        facts=" · ".join(f"<b>{k}</b>: {html.escape(v)}" for k, v in run["facts"].items()),
        eval_fig=_img(figs["eval"], "eval") if "eval" in figs else "",
        eval_table=_eval_table(run["evals"]),
        rl_curve=_img(figs["rl"], "RL learning curve") if "rl" in figs else _one_iteration(run["metrics"]),
        rl_summary=rl_summary_html(run["metrics"], run["evals"], bank),
        curves=curves,
        bank_fig=_img(figs["bank"], "bank size") if "bank" in figs else "",
        evolution=_evolution_list(run["banks"]),
        n_skills=len(bank),
        bank_rows=_bank_rows(bank, added_at),
    )
    return atomic_write_text(out_dir / "index.html", page)
