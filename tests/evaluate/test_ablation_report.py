"""The ablation statistics and report: literals from scipy.stats.fisher_exact and by hand, no models."""

from __future__ import annotations

import doctest

import pytest

from krill.evaluate import stats
from krill.evaluate.ablation_report import (
    ablation_markdown,
    ablation_rows,
    plot_ablation,
    plot_rl_curves,
    rl_curves,
    write_ablation_report,
)
from krill.evaluate.stats import fisher_two_sided, seed_spread, wilson_interval
from krill.io import read_text


def test_stats_doctests_run():
    assert doctest.testmod(stats).failed == 0


# p values from scipy.stats.fisher_exact([[a, n_a - a], [b, n_b - b]]) (scipy 1.17.1), hardcoded
@pytest.mark.parametrize(
    ("table", "p"),
    [
        ((0, 60, 9, 60), 0.0028275257775291726),
        ((9, 60, 9, 60), 1.0),
        ((3, 20, 12, 25), 0.02739453066059108),  # unequal arms
        ((1, 10, 7, 12), 0.030959752321981428),
        ((12, 60, 9, 60), 0.6316718412317515),
        ((24, 120, 0, 120), 3.323311161001439e-08),
        ((24, 120, 12, 120), 0.04565032477777571),
    ],
)
def test_fisher_two_sided_matches_scipy(table, p):
    assert fisher_two_sided(*table) == pytest.approx(p, rel=1e-9)
    # two-sided: swapping the arms changes nothing
    a, n_a, b, n_b = table
    assert fisher_two_sided(b, n_b, a, n_a) == pytest.approx(p, rel=1e-9)


def test_wilson_by_hand():
    # 2/10: denom 1 + z²/10 = 1.38415, centre (0.2 + 0.19207)/1.38415 = 0.28326,
    # half 1.95996 · sqrt(0.016 + 0.0096037)/1.38415 = 0.22658
    lo, hi = wilson_interval(2, 10)
    assert lo == pytest.approx(0.28326 - 0.22658, abs=1e-4)
    assert hi == pytest.approx(0.28326 + 0.22658, abs=1e-4)


def test_seed_spread():
    assert seed_spread([0.15, 0.25]) == pytest.approx((0.2, 0.0707107), abs=1e-6)  # sd = 0.05·√2
    assert seed_spread([0.3]) == (0.3, 0.0)


def _group(
    wins: int, n: int, *, steps: float = 10.0, tokens: float = 500.0, score: float | None = None
) -> dict:
    lo, hi = wilson_interval(wins, n)
    rate = wins / n
    return {"episodes": n, "successes": wins, "success_rate": rate, "ci_low": lo, "ci_high": hi,
            "mean_score": rate if score is None else score, "mean_steps": steps, "invalid_action_rate": 0.1,
            "mean_prompt_tokens": tokens, "skills_per_step": 1.0}  # fmt: skip


def _run(seed: int, clean: int, heat: int, **kw) -> dict:
    """A 60-episode run: 30 Clean and 30 Heat tasks."""
    results = {
        "Clean": _group(clean, 30, **kw),
        "Heat": _group(heat, 30, **kw),
        "all": _group(clean + heat, 60, **kw),
    }
    return {"seed": seed, "eval": f"variants/x/seed_{seed}/eval.json", "results": results}


def _data(env: str = "alfworld") -> dict:
    return {
        "format": "krill-ablation/1", "env": env, "preset": "quick", "model": "smollm2",
        "split": "valid_unseen", "episodes": 60, "seeds": [42, 7], "reference": "skillrl",
        "wall_time_s": 10.0,
        "variants": {
            "base": {"description": "untrained policy, cycle-0 skills retrieved",
                     "runs": [_run(42, 0, 0, tokens=800), _run(7, 0, 0, tokens=800)]},
            "memory": {"description": "raw trajectories in the prompt",
                       "runs": [_run(42, 4, 2, tokens=1200), _run(7, 3, 3, tokens=1200)]},
            "skillrl": {"description": "the full method",
                        # seed 42: 9/60 over 600 steps at 500 tok; seed 7: 15/60 over 1200 steps at 800 tok
                        "runs": [_run(42, 6, 3), _run(7, 9, 6, steps=20.0, tokens=800)]},
            "no_evolution": {"description": "static skill bank", "runs": []},
        },
    }  # fmt: skip


def test_rows_pool_two_seeds():
    rows = ablation_rows(_data())
    assert [r["name"] for r in rows] == ["base", "memory", "skillrl", "no_evolution"]
    sk = rows[2]
    assert (sk["successes"], sk["episodes"], sk["success_rate"]) == (24, 120, 0.2)
    # Wilson 24/120 by hand: centre (0.2 + z²/240)/(1 + z²/120) = 0.20931, half 0.07106
    assert sk["ci_low"] == pytest.approx(0.13824, abs=1e-4)
    assert sk["ci_high"] == pytest.approx(0.28037, abs=1e-4)
    assert sk["categories"] == pytest.approx({"Clean": 15 / 60, "Heat": 9 / 60})
    assert (sk["seed_mean"], sk["seed_std"]) == pytest.approx((0.2, 0.0707107), abs=1e-6)
    assert sk["mean_steps"] == pytest.approx(15.0)  # equal episodes: plain mean of 10 and 20
    assert sk["mean_prompt_tokens"] == pytest.approx(
        (600 * 500 + 1200 * 800) / 1800
    )  # 700: weighted by steps


def test_p_vs_reference():
    rows = {r["name"]: r for r in ablation_rows(_data())}
    assert rows["skillrl"]["p_vs_reference"] is None
    assert rows["base"]["p_vs_reference"] == pytest.approx(3.323311161001439e-08, rel=1e-9)
    assert rows["memory"]["p_vs_reference"] == pytest.approx(0.04565032477777571, rel=1e-9)
    assert rows["no_evolution"]["p_vs_reference"] is None
    assert rows["no_evolution"]["success_rate"] is None
    data = _data()
    del data["variants"]["skillrl"]
    assert all(r["p_vs_reference"] is None for r in ablation_rows(data))


def test_markdown_table():
    md = ablation_markdown(_data())
    assert (
        "| variant | success % [95% Wilson] (k/n) | Clean | Heat | steps | invalid % | prompt tok/step" in md
    )
    assert "| p vs skillrl | seeds mean ± sd |" in md
    assert "score" not in md.split("\n")[2]  # ALFWorld: no score column
    assert (
        "| skillrl | 20.0% [13.8–28.0] (24/120) | 25.0% | 15.0% | 15.0 | 10.0% | 700 | reference | 20.0 ± 7.1% |"
        in md
    )
    assert "| base | 0.0% [0.0–3.1] (0/120) | 0.0% | 0.0% | 10.0 | 10.0% | 800 | 3.3e-08 |" in md
    assert "| no_evolution | — (not run) | — | — | — | — | — | — | — |" in md
    assert "- **memory**: raw trajectories in the prompt" in md
    assert "memory uses 50% more prompt tokens per step than base." in md


def test_markdown_one_seed_has_no_spread_column():
    data = _data()
    data["seeds"] = [42]
    for v in data["variants"].values():
        v["runs"] = v["runs"][:1]
    md = ablation_markdown(data)
    assert "seeds mean ± sd" not in md
    assert "| skillrl | 15.0% [8.1–26.1] (9/60) |" in md


def test_webshop_adds_score_weighted_by_episodes():
    data = _data("webshop")
    # 60 episodes at score 0.5 and 20 at 0.1: (30 + 2)/80 = 0.4, not the unweighted 0.3
    small = {"seed": 7, "eval": "e.json", "results": {"all": _group(1, 20, score=0.1)}}
    data["variants"]["skillrl"]["runs"] = [_run(42, 6, 3, score=0.5), small]
    rows = {r["name"]: r for r in ablation_rows(data)}
    assert rows["skillrl"]["mean_score"] == pytest.approx(0.4)
    md = ablation_markdown(data)
    assert "| Heat | score | steps |" in md
    assert "| 0.400 |" in md


def test_memory_line_needs_both_runs():
    data = _data()
    data["variants"]["memory"]["runs"] = []
    assert "prompt tokens per step than base" not in ablation_markdown(data)
    data = _data()
    data["variants"]["memory"]["runs"] = [_run(42, 4, 2, tokens=600)]
    assert "memory uses 25% fewer prompt tokens per step than base." in ablation_markdown(data)


def _skills(episodes: int, evolved: int, in_bank: int) -> dict:
    """An eval's `skills` block: `evolved` of `episodes` prompts carried one of the bank's `in_bank` evolved skills."""
    return {"episodes": episodes, "with_skills": episodes, "distinct_used": 4, "evolved_in_bank": in_bank,
            "with_evolved": evolved, "evolved_share": evolved / episodes, "evolved_used": ["e1"] * bool(evolved)}  # fmt: skip


def _trained_data() -> dict:
    """`_data` with the training facts: skillrl (RL + evolution, 2 seeds), no_evolution (RL, frozen bank)."""
    data = _data()
    v = data["variants"]
    for run in v["base"]["runs"]:
        run["skills"] = _skills(60, 0, 0)  # cycle-0 bank: nothing evolved
    seed42, seed7 = v["skillrl"]["runs"]
    seed42 |= {"rl": {"updates": 3, "iterations": 3}, "skills": _skills(60, 12, 2)}
    seed7 |= {"rl": {"updates": 1, "iterations": 3}, "skills": _skills(60, 6, 1)}
    v["no_evolution"]["runs"] = [
        _run(42, 3, 3) | {"rl": {"updates": 0, "iterations": 3}, "skills": _skills(60, 0, 0)}
    ]
    return data


def test_rows_carry_rl_updates_and_evolved_prompts_pooled_over_seeds():
    rows = {r["name"]: r for r in ablation_rows(_trained_data())}
    assert (rows["skillrl"]["rl_updates"], rows["skillrl"]["rl_iterations"]) == (4, 6)
    assert (rows["skillrl"]["evolved_prompts"], rows["skillrl"]["evolved_episodes"]) == (18, 120)
    assert rows["no_evolution"]["rl_updates"] == 0 and rows["no_evolution"]["evolved_prompts"] is None
    assert rows["base"]["rl_updates"] is None and rows["base"]["evolved_prompts"] is None
    assert rows["memory"]["evolved_prompts"] is None  # runs from before the `skills` block


def test_markdown_rl_updates_and_evolved_prompt_columns():
    md = ablation_markdown(_trained_data())
    assert "| p vs skillrl | seeds mean ± sd | RL updates | evolved-skill prompts |" in md
    assert "| reference | 20.0 ± 7.1% | 4/6 | 15.0% (18/120) |" in md  # (12 + 6)/(60 + 60) over the seeds
    # no_evolution: RL never updated the weights, and its frozen bank holds no evolved skill
    assert "| no_evolution | 10.0% [4.7–20.1] (6/60) |" in md and "| 0/3 | — |" in md
    assert md.count("| — | — |\n") == 2  # base, memory: no RL, nothing evolved
    unfinished = ablation_markdown(_data()).splitlines()
    row = next(line for line in unfinished if line.startswith("| no_evolution |"))
    assert row.count("|") == unfinished[2].count("|")  # a variant not run yet fills the new columns too


def test_plot_and_report_files(tmp_path):
    png = plot_ablation(_data(), tmp_path / "a.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    paths = write_ablation_report(_data(), tmp_path / "run")
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"
    assert read_text(paths["markdown"]) == ablation_markdown(_data())


def test_wrong_format_is_an_error():
    from krill.errors import KrillError

    data = _data()
    data["format"] = "krill-eval/1"
    with pytest.raises(KrillError, match="krill-ablation/1"):
        ablation_rows(data)


def _curve(*points: tuple[int, int, int, int]) -> list[dict]:
    """An RL run's kept curve from (wins, episodes, informative, groups) per iteration."""
    return [{"iteration": i, "wins": w, "episodes": n, "progress": None, "informative": k, "groups": g,
             "skipped": not k} for i, (w, n, k, g) in enumerate(points, 1)]  # fmt: skip


def test_rl_curves_pool_seeds_per_iteration_and_reach_markdown_and_figure(tmp_path):
    data = _trained_data()
    seed42, seed7 = data["variants"]["skillrl"]["runs"]
    seed42["rl"]["curve"] = _curve((2, 8, 1, 4), (0, 8, 0, 4))
    seed7["rl"]["curve"] = _curve((1, 8, 2, 4), (3, 8, 1, 4), (4, 8, 3, 4))  # one iteration more
    curves = rl_curves(data)
    assert list(curves) == ["skillrl"]  # no_evolution's run kept no curve (written before curves)
    assert [(p["wins"], p["episodes"], p["informative"], p["groups"]) for p in curves["skillrl"]] == [
        (3, 16, 3, 8), (3, 16, 1, 8), (4, 8, 3, 4)]  # fmt: skip
    md = ablation_markdown(data)
    assert "- **skillrl**: wins 3/16, 3/16, 4/8 · informative 3/8, 1/8, 3/4" in md
    paths = write_ablation_report(data, tmp_path)
    assert paths["rl_curves"] == tmp_path / "ablation_rl.png"
    assert paths["rl_curves"].read_bytes()[:4] == b"\x89PNG"


def test_no_rl_curve_no_figure_and_no_section(tmp_path):
    assert plot_rl_curves(_data(), tmp_path / "x.png") is None
    assert "RL learning curves" not in ablation_markdown(_data())
    assert "rl_curves" not in write_ablation_report(_data(), tmp_path)


def test_variants_evaluated_on_different_games_get_a_warning():
    data = _data()
    for name in ("base", "memory"):
        for run in data["variants"][name]["runs"]:
            run["tasks_sha256"] = "aaaa"
    assert "different games" not in ablation_markdown(data)
    data["variants"]["skillrl"]["runs"][0]["tasks_sha256"] = "bbbb"
    md = ablation_markdown(data)
    assert (
        "**Warning: the variants were evaluated on different games** (groups sharing games: base, memory; skillrl)"
        in md
    )
