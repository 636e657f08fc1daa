"""The SkillRL ablation table: `write_ablation_report(data, run_dir)` → `ablation.md` + `ablation.png`.

Reads the result `krill ablate` writes as `RUN/ablation.json`:

    {"format": "krill-ablation/1", "env": "alfworld", "preset": "quick", "model": "smollm2",
     "split": "valid_unseen", "episodes": 60, "seeds": [42], "reference": "skillrl",
     "wall_time_s": 1234.5,
     "variants": {
        "base": {"description": "untrained policy, cycle-0 skills retrieved",
                 "runs": [{"seed": 42, "eval": "variants/base/eval.json",
                           "results": {"Clean": {GroupStats dict}, ..., "all": {GroupStats dict}},
                           "skills": {the eval's `skills` block, `krill.evaluate.eval.skill_usage`}}],
                 "wall_time_s": 300.0},
        "skillrl": {..., "runs": [{..., "rl": {"updates": 3, "iterations": 3,
                                               "curve": [{"iteration": 1, "wins": 2, "episodes": 8,
                                                          "informative": 1, "groups": 2, ...}, ...]}}]},
        ...}}

A variant's figures pool its runs (one per seed): counts are summed, so the Wilson interval and
Fisher's test see every episode; per-episode means are weighted by episodes, per-step means by steps.
A variant whose `runs` is empty has not finished and shows "—". "RL updates" counts the GRPO
iterations that changed the weights (`—` without RL), "evolved-skill prompts" the held-out episodes
whose prompt carried a skill evolution added (`—` when no bank evaluated held one); both pool the seeds.
"""

from __future__ import annotations

from pathlib import Path

from krill.errors import KrillError
from krill.evaluate.figures import _plain, _save, plt
from krill.evaluate.stats import fisher_two_sided, seed_spread, wilson_interval
from krill.io import atomic_write_text

ABLATION_FORMAT = "krill-ablation/1"
DASH = "—"  # an unfinished variant's cell
STYLES = ["-", "--", "-.", ":"]  # the RL curves' line styles


def _weighted(runs: list[dict], key: str, weights: list[float]) -> float:
    total = sum(weights)
    return (
        sum(r["results"]["all"][key] * w for r, w in zip(runs, weights, strict=True)) / total
        if total
        else 0.0
    )


def _categories(runs: list[dict]) -> dict[str, float]:
    """Category → success rate, counts pooled over the runs."""
    wins: dict[str, int] = {}
    eps: dict[str, int] = {}
    for r in runs:
        for cat, g in r["results"].items():
            if cat != "all":
                wins[cat] = wins.get(cat, 0) + g["successes"]
                eps[cat] = eps.get(cat, 0) + g["episodes"]
    return {cat: wins[cat] / eps[cat] if eps[cat] else 0.0 for cat in sorted(eps)}


def _pooled(runs: list[dict]) -> dict:
    alls = [r["results"]["all"] for r in runs]
    n, k = sum(g["episodes"] for g in alls), sum(g["successes"] for g in alls)
    lo, hi = wilson_interval(k, n)
    episodes = [g["episodes"] for g in alls]
    steps = [g["episodes"] * g["mean_steps"] for g in alls]  # per-step figures are weighted by steps
    mean, sd = seed_spread([g["success_rate"] for g in alls])
    return {
        "episodes": n,
        "successes": k,
        "success_rate": k / n if n else 0.0,
        "ci_low": lo,
        "ci_high": hi,
        "mean_score": _weighted(runs, "mean_score", episodes),
        "mean_steps": _weighted(runs, "mean_steps", episodes),
        "invalid_action_rate": _weighted(runs, "invalid_action_rate", steps),
        "mean_prompt_tokens": _weighted(runs, "mean_prompt_tokens", steps),
        "categories": _categories(runs),
        "seed_mean": mean,
        "seed_std": sd,
    }


def _rl_updates(runs: list[dict]) -> dict:
    """GRPO iterations that changed the weights, of all iterations, summed over the runs that
    recorded both (None for a variant without RL, or whose runs predate the count)."""
    rl = [
        r["rl"]
        for r in runs
        if r.get("rl") and None not in (r["rl"].get("updates"), r["rl"].get("iterations"))
    ]
    if not rl:
        return {"rl_updates": None, "rl_iterations": None}
    return {"rl_updates": sum(x["updates"] for x in rl), "rl_iterations": sum(x["iterations"] for x in rl)}


def _evolved_prompts(runs: list[dict]) -> dict:
    """Held-out episodes whose prompt carried an evolved skill, of all episodes, over the runs with a
    `skills` block; None when no run's bank held an evolved skill (nothing could be carried)."""
    blocks = [r["skills"] for r in runs if r.get("skills")]
    if not any(b.get("evolved_in_bank") for b in blocks):
        return {"evolved_prompts": None, "evolved_episodes": None}
    return {
        "evolved_prompts": sum(b.get("with_evolved", 0) for b in blocks),
        "evolved_episodes": sum(b.get("episodes", 0) for b in blocks),
    }


FIGURES = ("episodes", "successes", "success_rate", "ci_low", "ci_high", "mean_score", "mean_steps",
           "invalid_action_rate", "mean_prompt_tokens", "categories", "seed_mean", "seed_std")  # fmt: skip


def ablation_rows(data: dict) -> list[dict]:
    """One row per variant, in the order of `data["variants"]`, figures pooled over seeds, and
    `p_vs_reference` (two-sided Fisher exact vs the reference variant); an unfinished variant's are None."""
    if data.get("format") != ABLATION_FORMAT:
        raise KrillError(f"not a {ABLATION_FORMAT} result (format: {data.get('format')!r})")
    rows = []
    for name, v in data["variants"].items():
        runs = v.get("runs") or []
        row = {"name": name, "description": v.get("description", ""), "seeds": len(runs)}
        row |= _pooled(runs) if runs else dict.fromkeys(FIGURES)
        row |= _rl_updates(runs) | _evolved_prompts(runs)
        rows.append(row)
    ref = next((r for r in rows if r["name"] == data.get("reference") and r["episodes"]), None)
    for row in rows:
        finished = row["episodes"] is not None
        if ref is None or row is ref or not finished:
            row["p_vs_reference"] = None
        else:
            row["p_vs_reference"] = fisher_two_sided(
                ref["successes"], ref["episodes"], row["successes"], row["episodes"]
            )
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def _success_cell(r: dict) -> str:
    return (f"{100 * r['success_rate']:.1f}% [{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}] "
            f"({r['successes']}/{r['episodes']})")  # fmt: skip


def _table_row(r: dict, cats: list[str], webshop: bool, multi_seed: bool, ref: str) -> list[str]:
    if r["episodes"] is None:
        return [_cell(r["name"]), f"{DASH} (not run)"] + [DASH] * (len(cats) + webshop + 6 + multi_seed)
    cells = [_cell(r["name"]), _success_cell(r)]
    cells += [f"{100 * r['categories'][c]:.1f}%" if c in r["categories"] else DASH for c in cats]
    cells += [f"{r['mean_score']:.3f}"] if webshop else []
    cells += [
        f"{r['mean_steps']:.1f}",
        f"{100 * r['invalid_action_rate']:.1f}%",
        f"{r['mean_prompt_tokens']:.0f}",
    ]
    p = r["p_vs_reference"]
    cells.append("reference" if r["name"] == ref else DASH if p is None else f"{p:.2g}")
    if multi_seed:
        cells.append(f"{100 * r['seed_mean']:.1f} ± {100 * r['seed_std']:.1f}%")
    return cells + _training_cells(r)


def _training_cells(r: dict) -> list[str]:
    """`3/3` GRPO iterations that updated the weights; the share of evolved-skill prompts (k/n)."""
    updates = DASH if r["rl_updates"] is None else f"{r['rl_updates']}/{r['rl_iterations']}"
    k, n = r["evolved_prompts"], r["evolved_episodes"]
    evolved = DASH if k is None or not n else f"{100 * k / n:.1f}% ({k}/{n})"
    return [updates, evolved]


def _token_line(rows: list[dict]) -> str | None:
    """The paper's claim in one line: skills cost fewer prompt tokens per step than raw trajectories."""
    by_name = {r["name"]: r for r in rows}
    mem, base = by_name.get("memory"), by_name.get("base")
    if not (mem and base and mem["episodes"] and base["episodes"] and base["mean_prompt_tokens"]):
        return None
    change = 100 * (mem["mean_prompt_tokens"] / base["mean_prompt_tokens"] - 1)
    more = "more" if change >= 0 else "fewer"
    return f"memory uses {abs(change):.0f}% {more} prompt tokens per step than base."


def ablation_markdown(data: dict) -> str:
    """The ablation as GitHub markdown: a header naming what ran, the table, the variant descriptions."""
    rows = ablation_rows(data)
    ref = data.get("reference", "skillrl")
    cats = sorted({c for r in rows if r["categories"] for c in r["categories"]})
    webshop, multi_seed = data.get("env") == "webshop", len(data.get("seeds", [])) > 1
    head = ["variant", "success % [95% Wilson] (k/n)", *(_cell(c) for c in cats)]
    head += ["score"] if webshop else []
    head += ["steps", "invalid %", "prompt tok/step", f"p vs {_cell(ref)}"]
    head += ["seeds mean ± sd"] if multi_seed else []
    head += ["RL updates", "evolved-skill prompts"]
    lines = [
        f"**{data.get('env', '?')}** ablation · model {data.get('model', '?')} · "
        f"preset {data.get('preset', '?')} · "
        f"split {data.get('split', '?')} · {data.get('episodes', '?')} episodes per variant · "
        f"seeds {', '.join(str(s) for s in data.get('seeds', []))}"
        + (f" · {data['wall_time_s'] / 60:.1f} min of phases" if data.get("wall_time_s") else ""),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(_table_row(r, cats, webshop, multi_seed, ref)) + " |" for r in rows),
        "",
        f"p: Fisher's exact test, two-sided, on pooled successes vs {_cell(ref)}.",
        "RL updates: GRPO iterations that changed the weights (in the others every group's rewards were "
        "equal). Evolved-skill prompts: held-out episodes whose prompt carried a skill evolution added.",
        "",
        *(f"- **{_cell(r['name'])}**: {_cell(r['description'])}" for r in rows),
    ]
    tokens = _token_line(rows)
    games = _games_line(data)
    return "\n".join([*lines, *(["", games] if games else []), *(["", tokens] if tokens else []),
                      *rl_curves_markdown(data)]) + "\n"  # fmt: skip


def _games_line(data: dict) -> str | None:
    """A warning when the variants were not evaluated on the same games (their eval's task-id hash)."""
    by_hash: dict[str, list[str]] = {}
    for name, v in data["variants"].items():
        for run in v.get("runs") or []:
            if run.get("tasks_sha256"):
                by_hash.setdefault(run["tasks_sha256"], []).append(name)
    if len(by_hash) <= 1:
        return None
    groups = "; ".join(", ".join(sorted(set(names))) for names in by_hash.values())
    return f"**Warning: the variants were evaluated on different games** (groups sharing games: {groups}); their rows are not comparable."


def plot_ablation(data: dict, path: str | Path) -> Path:
    """Overall success % per variant with 95% Wilson error bars, every bar labelled; a PNG at `path`."""
    rows = ablation_rows(data)
    rates = [100 * r["success_rate"] if r["episodes"] else 0.0 for r in rows]
    lo = [
        max(0.0, rate - 100 * r["ci_low"]) if r["episodes"] else 0.0
        for rate, r in zip(rates, rows, strict=True)
    ]
    hi = [
        max(0.0, 100 * r["ci_high"] - rate) if r["episodes"] else 0.0
        for rate, r in zip(rates, rows, strict=True)
    ]
    fig, ax = plt.subplots(figsize=(6.4, 0.8 + 0.5 * max(1, len(rows))))
    ys = range(len(rows))
    ax.barh(ys, rates, xerr=[lo, hi], capsize=3, color="tab:blue")
    # a label on every bar (a 0 % bar has no length, but it must still be seen), past its error bar
    for y, rate, up, r in zip(ys, rates, hi, rows, strict=True):
        ax.text(rate + up + 1.5, y, f"{rate:.1f}%" if r["episodes"] else "not run", va="center", fontsize=8)
    ax.set_yticks(list(ys), [_plain(r["name"]) for r in rows])
    ax.invert_yaxis()  # the first variant on top, as in the table
    ax.set_xlim(0, 115)
    ax.set_xlabel("success % (95% Wilson CI)")
    seeds = len(data.get("seeds", []))
    title = f"{data.get('env', '?')} ablation: {data.get('episodes', '?')} held-out episodes per variant"
    ax.set_title(_plain(title + (f" × {seeds} seeds" if seeds > 1 else "")))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, Path(path))


def rl_curves(data: dict) -> dict[str, list[dict]]:
    """Per RL variant, its learning curve pooled over seeds: per iteration the rollout `wins` of
    `episodes` and the `informative` of `groups` summed (runs from before curves were kept add nothing)."""
    curves = {}
    for name, v in data["variants"].items():
        pooled: dict[int, dict] = {}
        for run in v.get("runs") or []:
            for pt in (run.get("rl") or {}).get("curve") or []:
                acc = pooled.setdefault(pt["iteration"], {"iteration": pt["iteration"], "wins": 0, "episodes": 0,
                                                          "informative": 0.0, "groups": 0.0})  # fmt: skip
                for key in ("wins", "episodes", "informative", "groups"):
                    acc[key] += pt.get(key) or 0
        if pooled:
            curves[name] = [pooled[it] for it in sorted(pooled)]
    return curves


def _fraction(k: float, n: float) -> str:
    return f"{k:g}/{n:g}" if n else DASH


def rl_curves_markdown(data: dict) -> list[str]:
    """Lines for ablation.md: per RL variant, rollout wins and informative groups per iteration."""
    curves = rl_curves(data)
    if not curves:
        return []
    lines = ["", "RL learning curves, per GRPO iteration: rollout wins (rollouts after an expert prefix included, added expert episodes not) · groups "
             "whose rewards differed (the ones GRPO learns from); figure: ablation_rl.png", ""]  # fmt: skip
    for name, curve in curves.items():
        wins = ", ".join(_fraction(p["wins"], p["episodes"]) for p in curve)
        informative = ", ".join(_fraction(p["informative"], p["groups"]) for p in curve)
        lines.append(f"- **{_cell(name)}**: wins {wins} · informative {informative}")
    return lines


def plot_rl_curves(data: dict, path: str | Path) -> Path | None:
    """Each RL variant's rollout success per iteration (95% Wilson band) above its share of informative
    groups; a PNG at `path`, or None when no variant kept a curve."""
    curves = rl_curves(data)
    if not curves:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6.4, 6.0))
    for k, (name, curve) in enumerate(curves.items()):
        # variants with the same curve (e.g. evolution that never reached a rollout prompt) would hide
        # each other: each is nudged sideways and drawn in its own dash style
        dx, style = 0.06 * (k - (len(curves) - 1) / 2), dict(marker="os^Dv"[k % 5], ms=3, ls=STYLES[k % 4])
        pts = [p for p in curve if p["episodes"]]
        its = [p["iteration"] + dx for p in pts]
        rates = [100 * p["wins"] / p["episodes"] for p in pts]
        line = top.plot(its, rates, label=_plain(name), **style)[0]
        bands = [wilson_interval(p["wins"], p["episodes"]) for p in pts]
        top.fill_between(its, [100 * lo for lo, _ in bands], [100 * hi for _, hi in bands],
                         alpha=0.08, color=line.get_color(), lw=0)  # fmt: skip
        grouped = [p for p in curve if p["groups"]]
        bottom.plot([p["iteration"] + dx for p in grouped], [100 * p["informative"] / p["groups"] for p in grouped],
                    color=line.get_color(), label=_plain(name), **style)  # fmt: skip
    top.set_title("RL rollouts: success per iteration (95% Wilson band)", fontsize=10)
    bottom.set_title("groups whose rewards differed (GRPO has an advantage)", fontsize=10)
    for ax in (top, bottom):
        ax.set_ylim(-3, 103)
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
    top.legend(fontsize=7, loc="best")
    bottom.set_xlabel("GRPO iteration")
    fig.tight_layout()
    return _save(fig, Path(path))


def write_ablation_report(data: dict, run_dir: str | Path) -> dict[str, Path]:
    """Write `run_dir/ablation.md`, `ablation.png` and, when RL variants kept learning curves,
    `ablation_rl.png` (all atomically); return their paths."""
    run_dir = Path(run_dir)
    md = atomic_write_text(run_dir / "ablation.md", ablation_markdown(data))
    paths = {"markdown": md, "plot": plot_ablation(data, run_dir / "ablation.png")}
    curves = plot_rl_curves(data, run_dir / "ablation_rl.png")
    return paths | ({"rl_curves": curves} if curves else {})
