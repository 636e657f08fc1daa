"""The report's RL learning curve: per GRPO iteration, what the rollouts achieved and what they carried.

Reads the rows `krill.train.rl` appends to `metrics.jsonl`, one per iteration (`iteration` counts
from 1). Keys came in over time, so an older run's rows lack some: a curve whose key no row holds is
left out and the figure names it, as does the summary list beside it.

    charts/success_rate × rollout/episodes   rollout wins, drawn with a 95% Wilson interval
    rollout/progress                         mean best progress of the rollouts (ALFWorld subgoals, 0..1)
    guide/share                              rollouts after an expert prefix, or expert trajectories added
    skills/evolved_share                     rollouts whose prompt carried a skill evolution added
    groups/informative, groups/total         groups whose rewards differ (GRPO has an advantage to learn)
    update/skipped                           1.0 when no group was informative: the weights did not change
"""

from __future__ import annotations

import html
from pathlib import Path

from krill.evaluate.figures import _save, iteration_axis, plt, skipped_iterations
from krill.evaluate.stats import wilson_interval
from krill.schema import SkillBank

# the figure's panels: title → [(metric key, legend label)], each drawn in % of rollouts or groups
OUTCOMES = [("charts/success_rate", "success (95% Wilson CI)"), ("rollout/progress", "mean progress")]
CARRIED = [("guide/share", "guided rollouts"), ("skills/evolved_share", "evolved-skill prompts"),
           ("groups/informative", "informative groups")]  # fmt: skip
TIMES = [
    ("time/rollout_s", "rollout"),
    ("time/old_ref_s", "π_old/π_ref log-probs"),
    ("time/update_s", "update"),
]


def values(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(iterations, values) of the rows that logged `key` as a number; `groups/informative` is
    divided by its row's `groups/total` (rows without a positive total are left out)."""
    xs, ys = [], []
    for m in metrics:
        v = m.get(key)
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if key == "groups/informative":
            total = m.get("groups/total")
            if not isinstance(total, int | float) or total <= 0:
                continue
            v = v / total
        xs.append(int(m["iteration"]))
        ys.append(float(v))
    return xs, ys


def success_interval(metrics: list[dict]) -> tuple[list[int], list[float], list[float]]:
    """(iterations, Wilson low, Wilson high) of the rows with both the success rate and the episode
    count: successes = round(`charts/success_rate` × `rollout/episodes`)."""
    its, lo, hi = [], [], []
    for m in metrics:
        rate, n = m.get("charts/success_rate"), m.get("rollout/episodes")
        if isinstance(rate, int | float) and isinstance(n, int | float) and n >= 1:
            low, high = wilson_interval(round(rate * n), int(n))
            its.append(int(m["iteration"]))
            lo.append(low)
            hi.append(high)
    return its, lo, hi


def missing_keys(metrics: list[dict]) -> list[str]:
    """The keys of the curves (and of the success interval) that no row logged as a number."""
    keys = [k for k, _ in OUTCOMES + CARRIED] + ["rollout/episodes"]
    return [k for k in keys if not values(metrics, k)[0]]


def _panel(ax, metrics: list[dict], curves: list[tuple[str, str]], skipped: list[int], title: str) -> None:
    """One panel: each curve in % of rollouts (or of groups); skipped updates as dotted lines."""
    for key, label in curves:
        xs, ys = values(metrics, key)
        its, lo, hi = success_interval(metrics) if key == "charts/success_rate" else ([], [], [])
        if key == "charts/success_rate" and not its:
            label = "success"  # no episode counts logged: no interval to draw
        line = ax.plot(xs, [100 * y for y in ys], marker="o", ms=3, label=label)[0]
        if its:
            _interval(ax, its, lo, hi, dict(zip(xs, ys, strict=True)), line.get_color())
    for k, it in enumerate(skipped):
        ax.axvline(it, color="0.6", ls=":", lw=1, label="update skipped (equal rewards)" if k == 0 else None)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(-3, 103)
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _interval(ax, its: list[int], lo: list[float], hi: list[float], rates: dict[int, float], color) -> None:
    """The success rate's 95% Wilson interval: a band, or an error bar for one iteration (a band of one
    point is invisible)."""
    if len(its) > 1:
        ax.fill_between(its, [100 * v for v in lo], [100 * v for v in hi], alpha=0.2, color=color, lw=0)
        return
    rate = 100 * rates[its[0]]
    ax.errorbar(its, [rate], yerr=[[rate - 100 * lo[0]], [100 * hi[0] - rate]], capsize=3, color=color)


def rl_curve(metrics: list[dict], path: Path) -> Path | None:
    """The RL learning curve (PNG at `path`): rollout success with its 95% Wilson interval and mean
    progress; below, the guided, evolved-skill and informative-group shares. None without metrics."""
    if not metrics:
        return None
    skipped, missing = skipped_iterations(metrics), missing_keys(metrics)
    panels = [(title, [(k, label) for k, label in curves if values(metrics, k)[0]])
              for title, curves in (("Rollouts: success and progress", OUTCOMES),
                                    ("Guidance, evolved skills, informative groups", CARRIED))]  # fmt: skip
    panels = [(title, curves) for title, curves in panels if curves]
    fig, axes = plt.subplots(max(1, len(panels)), 1, sharex=True, figsize=(6.4, 0.6 + 3.0 * max(1, len(panels))),
                             squeeze=False)  # fmt: skip
    if not panels:  # nothing this figure draws was logged: say so instead of an empty axis
        axes[0][0].set_axis_off()
        axes[0][0].text(0.5, 0.5, "not logged in this run:\n" + "\n".join(missing), ha="center", va="center",
                        transform=axes[0][0].transAxes, color="0.4")  # fmt: skip
        return _save(fig, path)
    for ax, (title, curves) in zip(axes[:, 0], panels, strict=True):
        _panel(ax, metrics, curves, skipped, title)
    iteration_axis(axes[-1][0], [int(m["iteration"]) for m in metrics])
    if missing:
        fig.text(
            0.01, 0.0, "not logged in this run: " + ", ".join(missing), fontsize=7, color="0.4", va="top"
        )
    fig.tight_layout()
    return _save(fig, path)


def learning_curve(metrics: list[dict]) -> list[dict]:
    """One point per iteration (the last row of each wins, as in `update_counts`): rollout `wins` of
    `episodes`, mean `progress`, `informative` of `groups`, and whether the update was `skipped`;
    a figure the row did not log is None. This is what an ablation keeps of each RL run."""
    last = {int(m["iteration"]): m for m in metrics if "iteration" in m}

    def num(m: dict, key: str) -> float | None:
        v = m.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    curve = []
    for it, m in sorted(last.items()):
        rate, n = num(m, "charts/success_rate"), num(m, "rollout/episodes")
        skipped = num(m, "update/skipped")
        curve.append({
            "iteration": it,
            "wins": round(rate * n) if rate is not None and n is not None else None,
            "episodes": int(n) if n is not None else None,
            "progress": num(m, "rollout/progress"),
            "informative": num(m, "groups/informative"),
            "groups": num(m, "groups/total"),
            "skipped": None if skipped is None else bool(skipped),
        })  # fmt: skip
    return curve


def update_counts(metrics: list[dict]) -> tuple[int, int] | None:
    """(iterations that changed the weights, iterations that logged `update/skipped`); None if none did.
    A row per iteration (the last one wins), so a log written twice over a resume counts once."""
    last = {
        int(m["iteration"]): m["update/skipped"]
        for m in metrics
        if "iteration" in m and "update/skipped" in m
    }
    return (sum(1 for v in last.values() if not v), len(last)) if last else None


def group_totals(metrics: list[dict], key: str) -> tuple[float, float] | None:
    """(Σ `key`, Σ `groups/total`) over the rows that logged both; None if none did."""
    rows = [
        m
        for m in metrics
        if isinstance(m.get(key), int | float) and isinstance(m.get("groups/total"), int | float)
    ]
    return (sum(m[key] for m in rows), sum(m["groups/total"] for m in rows)) if rows else None


def _pct(part: float, whole: float, noun: str = "") -> str:
    """`3 of 10 episodes (30%)`; counts print as whole numbers when they are."""
    head = f"{part:g} of {whole:g}" + (f" {noun}" if noun else "")
    return f"{head} ({100 * part / whole:.0f}%)" if whole else head


def _updates_item(metrics: list[dict]) -> str:
    counts = update_counts(metrics)
    if counts is None:
        return "weights updated: not logged in this run (no update/skipped)"
    updated, n = counts
    return f"the weights changed in {updated} of {n} iterations" + (
        f" ({n - updated} skipped: every group's rollouts had the same reward)" if updated < n else ""
    )


def _groups_item(metrics: list[dict]) -> str:
    informative = group_totals(metrics, "groups/informative")
    if informative is None:
        return "informative groups: not logged in this run (no groups/informative, groups/total)"
    text = f"informative groups (rewards differ, so GRPO has an advantage): {_pct(*informative)}"
    with_win = group_totals(metrics, "groups/with_win")
    return text + (f"; groups with a win: {_pct(*with_win)}" if with_win else "")


def _guide_item(metrics: list[dict]) -> str:
    _, share = values(metrics, "guide/share")
    if not share:
        return "guided rollouts: not logged in this run (no guide/share)"
    text = f"guided rollouts (after an expert prefix, or expert trajectories added): {100 * _mean(share):.0f}% on average"
    _, frac = values(metrics, "guide/fraction")
    _, success = values(metrics, "guide/success")
    text += f"; expert-prefix fraction {frac[0]:.2f} → {frac[-1]:.2f}" if frac else ""
    return text + (f"; guide/success {100 * _mean(success):.0f}% on average" if success else "")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _evolved_item(metrics: list[dict], evals: dict[str, dict], bank: SkillBank) -> str:
    """Evolved-skill prompts: in the trained policy's held-out eval (its `skills` block) and during RL."""
    e = html.escape
    block = (evals.get("after") or {}).get("skills")
    _, per_iter = values(metrics, "skills/evolved_share")
    parts = []
    if block is not None and block["evolved_in_bank"]:
        names = [
            e(s.name) if (s := bank.get(i)) else f"<code>{e(i)}</code>" for i in block.get("evolved_used", [])
        ]
        parts.append(f"held-out after training, {_pct(block['with_evolved'], block['episodes'], 'episodes')} "
                     f"carried one ({len(names)} of the bank's {block['evolved_in_bank']} evolved skills"
                     + (f": {', '.join(names)})" if names else ")"))  # fmt: skip
    elif block is not None:
        parts.append("held-out after training, none: the evaluated bank holds no skill evolution added")
    if block is not None:
        parts.append(f"{_pct(block['with_skills'], block['episodes'], 'episodes')} carried any skill, "
                     f"{block['distinct_used']} distinct skills in all")  # fmt: skip
    if per_iter:
        parts.append(
            f"during RL: {100 * _mean(per_iter):.0f}% of rollouts on average, {100 * per_iter[-1]:.0f}% in the last iteration"
        )
    if not parts:
        return "evolved-skill prompts: not recorded (eval/after.json has no skills block, the metrics no skills/evolved_share)"
    return "evolved-skill prompts: " + "; ".join(parts)


def _time_item(metrics: list[dict]) -> str | None:
    parts = [f"{label} {_mean(ys):.1f} s" for key, label in TIMES if (ys := values(metrics, key)[1])]
    return "mean time per iteration: " + " · ".join(parts) if parts else None


def rl_summary_html(metrics: list[dict], evals: dict[str, dict], bank: SkillBank) -> str:
    """The lines beside the RL curve: updates, informative groups, guidance, evolved skills, time."""
    if not metrics and "skills" not in (evals.get("after") or {}):
        return ""
    items = [_updates_item(metrics), _groups_item(metrics), _guide_item(metrics)] if metrics else []
    items += [_evolved_item(metrics, evals, bank), _time_item(metrics)]
    # every item is built from numbers, metric keys and escaped skill names: no raw string reaches the page
    return '<ul class="rl">' + "".join(f"<li>{i}</li>" for i in items if i) + "</ul>"
