"""Evaluation statistics: per-category success with 95% Wilson intervals, and side-by-side comparison.

The Wilson score interval (Wilson 1927) stays inside [0, 1] and behaves at 0% and 100%, where the
normal approximation collapses to a zero-width interval — exactly the cases small evals hit.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from krill.schema import Trajectory

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion.

    >>> [round(x, 3) for x in wilson_interval(0, 10)]
    [0.0, 0.278]
    >>> [round(x, 3) for x in wilson_interval(10, 10)]
    [0.722, 1.0]
    """
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the interval always holds p: rounding (e.g. 2.8e-17 for 0/n) must not put p outside it
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


@dataclass
class GroupStats:
    """Eval figures for one category (or "all")."""

    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_score: float  # WebShop: mean of score (0..1); ALFWorld: equals success rate
    mean_steps: float
    invalid_action_rate: float
    mean_prompt_tokens: float
    skills_per_step: float

    def to_dict(self) -> dict:
        return asdict(self)


def _score(t: Trajectory) -> float:
    if "score" in t.metadata:
        return float(t.metadata["score"])
    return 1.0 if t.success else 0.0


def group_stats(trajs: list[Trajectory]) -> GroupStats:
    n = len(trajs)
    wins = sum(1 for t in trajs if t.success)
    steps = [s for t in trajs for s in t.steps]
    n_steps = max(1, len(steps))
    lo, hi = wilson_interval(wins, n)
    invalid = sum(1 for s in steps if s.valid is False)
    prompt_tokens = sum(int(getattr(s, "prompt_tokens", 0) or 0) for s in steps)
    skills = sum(len(getattr(s, "skills_used", None) or []) for s in steps)
    return GroupStats(
        episodes=n,
        successes=wins,
        success_rate=wins / n if n else 0.0,
        ci_low=lo,
        ci_high=hi,
        mean_score=sum(_score(t) for t in trajs) / n if n else 0.0,
        mean_steps=len(steps) / n if n else 0.0,
        invalid_action_rate=invalid / n_steps,
        mean_prompt_tokens=prompt_tokens / n_steps,
        skills_per_step=skills / n_steps,
    )


def summarize(trajs: Iterable[Trajectory]) -> dict[str, GroupStats]:
    """Per-category stats plus "all", categories in sorted order."""
    trajs = list(trajs)
    by_cat: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        by_cat[t.task_category or "unknown"].append(t)
    out = {cat: group_stats(by_cat[cat]) for cat in sorted(by_cat)}
    out["all"] = group_stats(trajs)
    return out


@dataclass
class ComparisonRow:
    category: str
    rates: list[float | None]
    intervals: list[tuple[float, float] | None]
    diff: float | None  # last minus first
    overlap: bool | None  # do the first and last intervals overlap?


def compare(results: list[dict[str, dict]]) -> list[ComparisonRow]:
    """Side-by-side rows for several eval results (each: category → GroupStats dict)."""
    cats: list[str] = []
    for r in results:
        cats.extend(c for c in r if c not in cats and c != "all")
    rows = []
    for cat in [*sorted(cats), "all"]:
        cells = [r.get(cat) for r in results]
        rates = [c["success_rate"] if c else None for c in cells]
        ints = [(c["ci_low"], c["ci_high"]) if c else None for c in cells]
        diff = overlap = None
        if cells[0] and cells[-1]:
            diff = rates[-1] - rates[0]
            (a_lo, a_hi), (b_lo, b_hi) = ints[0], ints[-1]
            overlap = a_lo <= b_hi and b_lo <= a_hi
        rows.append(ComparisonRow(cat, rates, ints, diff, overlap))
    return rows


def fisher_one_sided(wins_a: int, n_a: int, wins_b: int, n_b: int) -> float:
    """Fisher's exact test, one-sided: P(B wins at least `wins_b` | both arms equally good).

    The hypergeometric tail over tables with the observed margins.

    >>> round(fisher_one_sided(0, 60, 6, 60), 3)
    0.014
    """
    total, wins = n_a + n_b, wins_a + wins_b
    denom = math.comb(total, wins)
    top = min(wins, n_b)
    return sum(math.comb(n_b, k) * math.comb(n_a, wins - k) for k in range(wins_b, top + 1)) / denom


def fisher_two_sided(wins_a: int, n_a: int, wins_b: int, n_b: int) -> float:
    """Fisher's exact test, two-sided: P(a table as or less likely than the observed one | margins).

    Sums the hypergeometric probabilities of every table with the observed margins whose probability
    is at most the observed table's, within a relative tolerance of 1e-7 (as R and scipy do, so that
    tables equally likely up to rounding count as equal).

    >>> round(fisher_two_sided(0, 60, 9, 60), 4)
    0.0028
    >>> fisher_two_sided(9, 60, 9, 60)
    1.0
    """
    total, wins = n_a + n_b, wins_a + wins_b
    # P(B wins k) under the null, unnormalised: C(n_b, k) C(n_a, wins - k), k feasible for both arms
    ks = range(max(0, wins - n_a), min(wins, n_b) + 1)
    weight = {k: math.comb(n_b, k) * math.comb(n_a, wins - k) for k in ks}
    observed = weight[wins_b] * (1 + 1e-7)
    return min(1.0, sum(w for w in weight.values() if w <= observed) / math.comb(total, wins))


def seed_spread(rates: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of per-seed rates; the deviation is 0.0 for one seed.

    >>> [round(x, 3) for x in seed_spread([0.1, 0.2, 0.3])]
    [0.2, 0.1]
    >>> seed_spread([0.25])
    (0.25, 0.0)
    """
    if not rates:
        return (0.0, 0.0)
    mean = sum(rates) / len(rates)
    if len(rates) == 1:
        return (mean, 0.0)
    var = sum((r - mean) ** 2 for r in rates) / (len(rates) - 1)
    return (mean, math.sqrt(var))


def difference_verdict(before: dict, after: dict) -> str:
    """One line on trained ('after') vs untrained ('before') overall success (GroupStats dicts):
    significant when the 95% Wilson intervals do not overlap, with Fisher's one-sided p beside it."""
    p = fisher_one_sided(before["successes"], before["episodes"], after["successes"], after["episodes"])
    b, a = before, after

    def cell(r: dict) -> str:
        return f"{100 * r['success_rate']:.1f}% [{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}]"

    head = f"trained {cell(a)} vs untrained {cell(b)} on {a['episodes']} held-out episodes"
    if a["ci_low"] > b["ci_high"]:
        return f"{head}: the 95% intervals do not overlap, the improvement is significant (Fisher one-sided p = {p:.2g})"
    if b["ci_low"] > a["ci_high"]:
        return f"{head}: the 95% intervals do not overlap, the trained policy is significantly worse"
    return f"{head}: the 95% intervals overlap, no significant difference at this size (Fisher one-sided p = {p:.2g})"
