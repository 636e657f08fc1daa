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
from krill.evaluate.eval import EVAL_FORMAT
from krill.evaluate.report import build_report, evolution_steps, load_run, skipped_iterations
from krill.evaluate.stats import summarize
from krill.io import append_jsonl, write_json
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
    assert run["facts"]["tasks"] == "alfworld, the whole train split"


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

    page = build_report(make_run(tmp_path), tmp_path / "out")
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
