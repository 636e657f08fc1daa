"""Wilson intervals, per-category summaries and comparisons, on hand-checked numbers."""

from __future__ import annotations

import pytest

from krill.evaluate.stats import compare, summarize, wilson_interval
from krill.schema import Step, Trajectory


def _traj(
    cat: str, success: bool, steps: int = 3, invalid: int = 0, score: float | None = None
) -> Trajectory:
    st = [
        Step(
            observation="o",
            action="a",
            step_index=i,
            valid=(i >= invalid),
            prompt_tokens=100,
            skills_used=["x", "y"],
        )
        for i in range(steps)
    ]
    meta = {"score": score} if score is not None else {}
    return Trajectory(task_description="t", task_category=cat, steps=st, success=success, metadata=meta)


def test_wilson_matches_known_values():
    # 8/10: the textbook Wilson 95% interval is [0.490, 0.943]
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.17  # non-degenerate even at 0%


def test_summarize_per_category_and_all():
    trajs = [_traj("Heat", True), _traj("Heat", False, invalid=1), _traj("Cool", True, steps=5)]
    res = summarize(trajs)
    assert list(res) == ["Cool", "Heat", "all"]
    assert res["Heat"].success_rate == 0.5 and res["Heat"].episodes == 2
    assert res["all"].successes == 2
    assert res["Heat"].invalid_action_rate == pytest.approx(1 / 6)
    assert res["all"].mean_steps == pytest.approx(11 / 3)
    assert res["all"].mean_prompt_tokens == 100 and res["all"].skills_per_step == 2


def test_webshop_score_is_mean_of_scores():
    res = summarize([_traj("apparel", True, score=1.0), _traj("apparel", False, score=0.5)])
    assert res["apparel"].mean_score == pytest.approx(0.75)


def test_compare_diff_and_overlap():
    a = {k: v.to_dict() for k, v in summarize([_traj("Heat", False)] * 20).items()}
    b = {k: v.to_dict() for k, v in summarize([_traj("Heat", True)] * 20).items()}
    rows = {r.category: r for r in compare([a, b])}
    assert rows["Heat"].diff == pytest.approx(1.0)
    assert rows["Heat"].overlap is False
    same = {r.category: r for r in compare([a, a])}
    assert same["all"].diff == 0 and same["all"].overlap is True


def test_wilson_interval_always_contains_the_rate():
    from krill.evaluate.stats import wilson_interval

    for n in (1, 6, 12, 60, 134):
        for k in (0, n // 2, n):
            lo, hi = wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert wilson_interval(0, 12)[0] == 0.0  # exactly, not 2.8e-17 (a negative error bar in the report)


def test_verdict_says_significant_only_when_the_intervals_separate():
    from krill.evaluate.stats import difference_verdict, fisher_one_sided

    def stats(wins, n):
        lo, hi = wilson_interval(wins, n)
        return {"successes": wins, "episodes": n, "success_rate": wins / n, "ci_low": lo, "ci_high": hi}

    assert fisher_one_sided(0, 60, 6, 60) == pytest.approx(0.0135, abs=1e-3)  # the fourth SmolLM2 experiment
    assert fisher_one_sided(3, 10, 3, 10) > 0.5
    sig = difference_verdict(stats(0, 60), stats(10, 60))
    assert "do not overlap, the improvement is significant" in sig and "16.7% [" in sig
    assert "no significant difference" in difference_verdict(stats(0, 60), stats(6, 60))  # 4.7% < 6.0%
    assert "significantly worse" in difference_verdict(stats(20, 60), stats(0, 60))
