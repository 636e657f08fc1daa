"""`krill report` on a run directory: figures exist and are non-empty, strings are escaped, and the
page renders in real headless Chromium with no failed resource loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from krill.config import load_config
from krill.evaluate import report_rl
from krill.evaluate.eval import EVAL_FORMAT
from krill.evaluate.report import build_report, evolution_steps, load_run, skipped_iterations
from krill.evaluate.report_rl import missing_keys, rl_curve, success_interval, update_counts
from krill.evaluate.report_run import example_episodes, phase_rows, sft_losses, skill_usage
from krill.evaluate.stats import summarize, wilson_interval
from krill.formats.banks import load_bank
from krill.io import append_jsonl, read_json, write_json
from krill.schema import Skill, SkillBank, Step, Trajectory
from krill.train.checkpoint import write_run_config

XSS = "<script>alert(1)</script>"


def _eval(path: Path, wins: dict[str, int]) -> None:
    trajs = [
        Trajectory(
            task_description="t", task_category=c, success=i < w, steps=[Step(observation="o", action="a")]
        )
        for c, w in wins.items()
        for i in range(5)
    ]
    res = {k: v.to_dict() for k, v in summarize(trajs).items()}
    write_json(
        path,
        {
            "format": EVAL_FORMAT,
            "env": "alfworld",
            "split": "valid_unseen",
            "policy": "local",
            "results": res,
        },
    )


def make_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    write_run_config(load_config(preset="tiny"), run)
    for it in range(1, 5):
        append_jsonl(run / "rl" / "metrics.jsonl", {
            "iteration": it, "rollout/reward": it * 1.5, "rollout/reward/Heat": it * 2.0,
            "charts/success_rate": it / 10, "losses/loss": 0.5 - it / 10, "losses/kl": it / 100,
            "losses/entropy": 3.0 - it / 10, "update/skipped": float(it == 2),
        })  # fmt: skip
    bank = SkillBank()
    bank.add(
        Skill(name="Heat first", principle="Use the microwave.", when_to_apply="hot tasks", category="Heat")
    )
    write_json(run / "banks" / "cycle_0.json", bank.to_json_dict())
    bank.current_cycle = 1
    bank.add(Skill(name=XSS, principle="p & <b>q</b>", when_to_apply="w", category="Heat"), cycle=1)
    write_json(run / "banks" / "cycle_1.json", bank.to_json_dict())
    _eval(run / "eval" / "before.json", {"Heat": 1, "Cool": 0})
    _eval(run / "eval" / "after.json", {"Heat": 4, "Cool": 2})
    return run


def test_report_figures_and_escaping(tmp_path):
    page = build_report(make_run(tmp_path), tmp_path / "out")
    text = page.read_text()
    for name in ("reward", "success", "loss", "kl", "entropy", "bank_size", "eval"):
        png = tmp_path / "out" / f"{name}.png"
        assert png.exists() and png.stat().st_size > 2000, name
    assert XSS not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "http://" not in text and "https://" not in text  # no CDN, opens offline
    assert "cycle 0: the bank RL began with, 1 skills" in text and "cycle 1: +1 — Heat: " in text
    assert "(Heat)" not in text  # the category heads its skills once, not after every name
    assert "<b>model</b>: tiny (local) · <b>preset</b>: tiny" in text
    assert "<b>eval</b>: 10 episodes of valid_unseen" in text and "<b>seed</b>: 0" in text


def test_report_data_skipped_updates_and_evolution_from_the_first_bank(tmp_path):
    run = load_run(make_run(tmp_path))
    assert skipped_iterations(run["metrics"]) == [2]
    assert [c for c, _ in run["banks"]] == [0, 1]
    assert evolution_steps(run["banks"]) == [(1, {"Heat": [XSS]})]
    assert (
        run["facts"]["tasks"]
        == "alfworld, 2 train tasks per RL iteration × 4 iterations (from the train split)"
    )


def _new_rows(run: Path) -> None:
    """Three iterations with the keys GRPO logs now; the second skipped its update (no informative group)."""
    (run / "rl" / "metrics.jsonl").unlink()
    for it, (wins, informative) in enumerate([(2, 2.0), (2, 0.0), (6, 3.0)], start=1):
        append_jsonl(run / "rl" / "metrics.jsonl", {
            "iteration": it, "rollout/reward": float(wins), "charts/success_rate": wins / 8, "rollout/episodes": 8.0,
            "rollout/progress": 0.3 + it / 10, "update/skipped": float(informative == 0), "groups/total": 4.0,
            "groups/informative": informative, "groups/with_win": 2.0, "guide/share": 0.5 - it / 10,
            "guide/fraction": 0.5 - it / 10, "skills/evolved_share": 0.25 * (it - 1), "time/rollout_s": 10.0,
            "time/old_ref_s": 2.0, "time/update_s": 4.0, "losses/loss": 0.1,
        })  # fmt: skip


def _evolved_block(run: Path) -> None:
    """eval/after.json's `skills` block: 3 of its 10 episodes carried the one evolved skill (cycle 1)."""
    ev = read_json(run / "eval" / "after.json")
    evolved = read_json(run / "banks" / "cycle_1.json")["history"][-1]["skill_id"]
    ev["skills"] = {"episodes": 10, "with_skills": 8, "distinct_used": 2, "evolved_in_bank": 1,
                    "with_evolved": 3, "evolved_share": 0.3, "evolved_used": [evolved]}  # fmt: skip
    write_json(run / "eval" / "after.json", ev)


def test_rl_learning_curve_and_its_summary(tmp_path):
    run = make_run(tmp_path)
    _new_rows(run)
    _evolved_block(run)
    text = build_report(run, tmp_path / "out").read_text()
    assert (tmp_path / "out" / "rl_curve.png").stat().st_size > 2000
    assert '<h2>RL learning curve</h2><figure><img alt="RL learning curve"' in text
    assert (
        "the weights changed in 2 of 3 iterations (1 skipped: every group's rollouts had the same reward)"
        in text
    )
    assert (
        "informative groups (rewards differ, so GRPO has an advantage): 5 of 12 (42%); groups with a win: 6 of 12 (50%)"
        in text
    )
    assert (
        "guided rollouts (after an expert prefix, or expert trajectories added): 30% on average; expert-prefix fraction 0.40 → 0.20"
        in text
    )
    # the evolved skill's name is the XSS string: escaped here as everywhere
    assert ("evolved-skill prompts: held-out after training, 3 of 10 episodes (30%) carried one (1 of the bank's 1 "
            "evolved skills: &lt;script&gt;alert(1)&lt;/script&gt;); 8 of 10 episodes (80%) carried any skill, 2 distinct "
            "skills in all; during RL: 25% of rollouts on average, 50% in the last iteration") in text  # fmt: skip
    assert "mean time per iteration: rollout 10.0 s · π_old/π_ref log-probs 2.0 s · update 4.0 s" in text
    assert "not logged" not in text and XSS not in text


def test_old_rows_without_the_new_keys_still_render(tmp_path):
    """`make_run`'s rows predate the new keys: the curve draws the success rate alone (no interval
    without episode counts) and the summary says what was not logged."""
    run = make_run(tmp_path)
    text = build_report(run, tmp_path / "out").read_text()
    assert (tmp_path / "out" / "rl_curve.png").stat().st_size > 2000
    assert "the weights changed in 3 of 4 iterations (1 skipped" in text
    assert "informative groups: not logged in this run (no groups/informative, groups/total)" in text
    assert "guided rollouts: not logged in this run (no guide/share)" in text
    assert "evolved-skill prompts: not recorded" in text and "mean time per iteration" not in text
    metrics = load_run(run)["metrics"]
    assert missing_keys(metrics) == ["rollout/progress", "guide/share", "skills/evolved_share",
                                     "groups/informative", "rollout/episodes"]  # fmt: skip
    assert success_interval(metrics) == ([], [], [])


def test_success_interval_counts_wins_from_the_rate_and_the_episodes():
    # 0.25 × 8 = 2 wins of 8: Wilson by hand, denom 1 + z²/8 = 1.48018, centre 0.33110, half 0.25962
    its, lo, hi = success_interval([{"iteration": 1, "charts/success_rate": 0.25, "rollout/episodes": 8.0}])
    assert (
        its == [1] and lo[0] == pytest.approx(0.07148, abs=1e-4) and hi[0] == pytest.approx(0.59072, abs=1e-4)
    )
    thirds = success_interval([{"iteration": 1, "charts/success_rate": 1 / 3, "rollout/episodes": 3.0}])
    assert thirds[1][0] == pytest.approx(wilson_interval(1, 3)[0])  # 0.333… × 3 rounds to 1 win


def test_update_counts_take_each_iteration_once():
    rows = [{"iteration": 1, "update/skipped": 0.0}, {"iteration": 2, "update/skipped": 1.0},
            {"iteration": 2, "update/skipped": 0.0}, {"iteration": 3}]  # fmt: skip
    assert update_counts(rows) == (2, 2)  # iteration 2 re-run after a resume: its last row counts
    assert update_counts([{"iteration": 1}]) is None


def _drawn(monkeypatch, metrics: list[dict], path: Path):
    """The figure `rl_curve` draws, kept open to read its axes."""
    figs = []
    monkeypatch.setattr(report_rl, "_save", lambda fig, p: figs.append(fig) or p)
    assert rl_curve(metrics, path) == path
    return figs[0]


def _visible_ticks(ax) -> list[float]:
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticks() if lo <= t <= hi]


def test_one_iteration_has_one_integer_tick_and_an_error_bar(monkeypatch, tmp_path):
    row = {"iteration": 1, "charts/success_rate": 0.25, "rollout/episodes": 8.0, "update/skipped": 0.0}
    fig = _drawn(monkeypatch, [row], tmp_path / "c.png")
    (ax,) = fig.axes
    assert _visible_ticks(ax) == [1.0] and ax.get_ylim() == (-3, 103)
    assert ax.containers, "one iteration's interval is an error bar, not an invisible band"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["success (95% Wilson CI)"]


def test_a_panel_without_any_of_its_keys_is_not_drawn(monkeypatch, tmp_path):
    rows = [{"iteration": it, "charts/success_rate": 0.5, "update/skipped": 0.0} for it in (1, 2, 3)]
    fig = _drawn(monkeypatch, rows, tmp_path / "c.png")
    assert [ax.get_title() for ax in fig.axes] == ["Rollouts: success and progress"]  # no empty second panel
    assert _visible_ticks(fig.axes[0]) == [1.0, 2.0, 3.0]
    note = [t.get_text() for t in fig.texts]
    assert note == ["not logged in this run: rollout/progress, guide/share, skills/evolved_share, "
                    "groups/informative, rollout/episodes"]  # fmt: skip
    bare = _drawn(monkeypatch, [{"iteration": 1, "losses/loss": 0.3}], tmp_path / "d.png")
    assert not bare.axes[0].axison  # nothing to draw: the panel says what is missing, with no empty axis
    assert bare.axes[0].texts[0].get_text().startswith("not logged in this run:\ncharts/success_rate\n")


def test_a_folder_that_is_not_a_run_is_an_error(tmp_path):
    from krill.errors import KrillError

    (tmp_path / "banks").mkdir()
    with pytest.raises(KrillError, match=r"not a krill run \(no config.yaml\)"):
        build_report(tmp_path)


def test_report_missing_run_dir_is_clear_error(tmp_path):
    from krill.errors import KrillError

    with pytest.raises(KrillError, match="run directory not found"):
        build_report(tmp_path / "nope")


def test_report_cli_bad_eval_file(tmp_path):
    run = make_run(tmp_path)
    write_json(run / "eval" / "after.json", {"general_skills": []})  # a bank, not an eval
    proc = subprocess.run([sys.executable, "-m", "krill", "report", str(run)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not a krill eval result" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    run = _explained_run(tmp_path)  # quick-preset-shaped: phases, an SFT log, the trained policy's episodes
    write_run_config(load_config(preset="quick"), run, check=False)
    page = build_report(run, tmp_path / "out")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400"]  # fmt: skip
    subprocess.run(
        [_chromium(), *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120
    )
    assert shot.exists()
    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100, "screenshot is blank"
    colors = Image.open(shot).convert("RGB").getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) > 50  # figures rendered, not just text on white
    # No failed resource loads: dump the DOM and check every <img> decoded (naturalWidth > 0).
    dom = subprocess.run(
        [_chromium(), *flags, "--virtual-time-budget=3000", "--dump-dom",
         "--run-all-compositor-stages-before-draw", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert "<img" in dom and 'src="data:image/png;base64,' in dom
    # the sections that explain the run, as the browser built them
    assert 'alt="SFT loss per optimizer step"' in dom and "<b>all phases</b>" in dom
    assert "<th>success with</th>" in dom and "<b>a win</b>" in dom
    assert "<b>preset</b>: quick" in dom


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_a_real_tiny_run_and_its_rl_folder_render_in_headless_chromium(tmp_path):
    """`krill train` on the tiny preset, then `krill report` on the run and on its `rl/` folder."""
    import os

    from PIL import Image

    run = tmp_path / "run"
    env = {
        **os.environ,
        "KRILL_EMBEDDER": "hash",
        "KRILL_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    krill = [sys.executable, "-m", "krill", "--preset", "tiny", "--env", "webshop"]
    done = subprocess.run(
        [*krill, "train", "--out", str(run)], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["update/skipped"] == 0.0 for r in rows), "the smoke run must exercise a real GRPO update"
    for folder in (run, run / "rl"):
        made = subprocess.run(
            [*krill, "report", str(folder)], env=env, capture_output=True, text=True, timeout=300
        )
        assert made.returncode == 0, made.stderr[-2000:]
        page = folder / "report" / "index.html"
        text = page.read_text()
        assert "<b>model</b>: tiny (local)" in text and "cycle 0: the bank RL began with" in text
        assert all(
            (folder / "report" / f"{name}.png").exists() for name in ("reward", "loss", "kl", "entropy")
        )
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400"]  # fmt: skip
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", (run / "report" / "index.html").as_uri()],
                   capture_output=True, timeout=120)  # fmt: skip
    img = Image.open(shot).convert("RGB")
    assert img.getcolors(maxcolors=1_000_000) is not None and len(img.getcolors(maxcolors=1_000_000)) > 50


# -- the run explained (krill.evaluate.report_run) ---------------------------------------------------


def _episode(category: str, won: bool, skills: list[str], steps: int = 2) -> dict:
    t = Trajectory(task_description=f"heat {category}", task_category=category, success=won,
                   steps=[Step(observation=f"obs {i} {XSS}", action=f"go to {i}") for i in range(steps)],
                   metadata={"skills_used": skills})  # fmt: skip
    return t.model_dump(mode="json")


def _explained_run(tmp_path: Path) -> Path:
    run = make_run(tmp_path)
    bank = load_bank(run / "banks" / "cycle_1.json")
    first, evolved = (s.id for s in bank.all_skills())
    for ep in (_episode("Heat", True, [first, evolved]), _episode("Heat", False, [first]),
               _episode("Cool", False, [], steps=5)):  # fmt: skip
        append_jsonl(run / "eval" / "after.trajectories.jsonl", ep)
    write_json(run / "state.json", {"done": {
        "collect": {"expert_episodes": 60, "wall_time_s": 40.0},
        "sft": {"examples": 64, "initial_loss": 1.56, "final_loss": 0.26, "wall_time_s": 220.0},
        "rl": {"iterations": 4, "updates": 3, "wall_time_s": 316.0}}})  # fmt: skip
    for step, loss in enumerate((1.5, 0.9, 0.4), 1):
        append_jsonl(run / "sft" / "metrics.jsonl", {"step": step, "loss": loss, "tokens": 100})
    (run / "rl" / "adapter").mkdir(parents=True)
    (run / "rl" / "adapter" / "adapter_config.json").write_text("{}")
    return run


def test_phase_times_sft_curve_usage_and_examples_are_on_the_page(tmp_path):
    run = _explained_run(tmp_path)
    text = build_report(run, tmp_path / "out").read_text()
    assert "<td>sft</td><td>220 s</td><td>examples 64, initial loss 1.56, final loss 0.26</td>" in text
    assert "<b>9.6 min</b>" in text  # 40 + 220 + 316 s
    assert (tmp_path / "out" / "sft_loss.png").stat().st_size > 2000
    assert "2 of the bank's 2 skills reached at least one of 3 held-out prompts" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <b>(evolved)</b>" in text  # escaped, and marked
    assert "<b>a win</b>" in text and "<b>a loss</b>" in text and "<b>the longest</b>" in text
    assert XSS not in text
    # what ran: the adapter the run trained, and the RL tasks it drew (not "the whole train split")
    assert "tiny (local) + adapter rl/adapter" in text
    rl = load_config(preset="tiny").rl
    drawn = (
        f"{rl.batch_size // rl.group_size} train tasks per RL iteration × 4 iterations (from the train split)"
    )
    assert drawn in text


def test_skill_usage_counts_episodes_and_success_with_and_without(tmp_path):
    run = _explained_run(tmp_path)
    bank = load_bank(run / "banks" / "cycle_1.json")
    first, evolved = (s.id for s in bank.all_skills())
    episodes = [_episode("Heat", True, [first, evolved, first]), _episode("Heat", False, [first]),
                _episode("Cool", False, [])]  # fmt: skip
    rows = {r["id"]: r for r in skill_usage(episodes, bank)}
    assert (rows[first]["episodes"], rows[first]["success_with"], rows[first]["success_without"]) == (
        2,
        0.5,
        0.0,
    )
    assert rows[evolved]["evolved"] and not rows[first]["evolved"]
    assert rows[evolved]["success_without"] == 0.0 and rows[evolved]["success_with"] == 1.0


def test_examples_are_a_win_a_loss_and_the_longest_each_once():
    win, loss, longest = (
        _episode("Heat", True, []),
        _episode("Cool", False, []),
        _episode("Pick", False, [], steps=9),
    )
    assert [label for label, _ in example_episodes([win, loss, longest])] == [
        "a win",
        "a loss",
        "the longest",
    ]
    only = example_episodes([longest, win])  # the only loss is the longest: shown once, as the longest
    assert [label for label, _ in only] == ["a win", "the longest"]
    assert example_episodes([]) == []


def test_one_rl_iteration_is_a_sentence_and_no_kl_panel_without_kl(tmp_path):
    run = tmp_path / "run"
    write_run_config(load_config(preset="quick"), run)  # rl.kl_coef 0
    for it in (1, 2):
        append_jsonl(run / "rl" / "metrics.jsonl", {"iteration": it, "losses/loss": 0.1, "losses/kl": 0.0,
                                                    "charts/success_rate": 0.5, "rollout/episodes": 8.0,
                                                    "update/skipped": 0.0})  # fmt: skip
    build_report(run, tmp_path / "two")
    assert (tmp_path / "two" / "loss.png").exists() and not (tmp_path / "two" / "kl.png").exists()
    one = tmp_path / "one"
    write_run_config(load_config(preset="quick"), one)
    append_jsonl(one / "rl" / "metrics.jsonl", {"iteration": 1, "charts/success_rate": 0.5,
                                                "rollout/episodes": 8.0, "update/skipped": 0.0})  # fmt: skip
    text = build_report(one, tmp_path / "out1").read_text()
    assert "One RL iteration: 4 of 8 rollouts won; the weights were updated." in text
    assert (
        not list((tmp_path / "out1").glob("loss.png")) and not (tmp_path / "out1" / "rl_curve.png").exists()
    )


def test_missing_or_damaged_pieces_leave_the_page_with_a_sentence(tmp_path):
    run = make_run(tmp_path)
    (run / "state.json").write_text("{not json")
    assert phase_rows(run) == [] and sft_losses(run) == []
    text = build_report(run, tmp_path / "out").read_text()
    assert "No phase times recorded" in text and "No SFT log in this run." in text
    assert "No held-out episodes saved with this run." in text
    assert load_run(run)["eval_paths"]["after"] == run / "eval" / "after.json"
