"""The report's account of how a run was made and what its policy did, beside the curves of `report.py`.

phase times        RUN/state.json: every finished phase, its wall time and key figures
SFT loss curve     RUN/sft/metrics.jsonl (or OUT/metrics.jsonl of `krill sft`): loss per optimizer step
skill usage        the trained policy's held-out episodes (`eval/after.trajectories.jsonl`): how often
                   each skill reached a prompt, evolved skills marked, success with and without it
example episodes   a win, a loss and the longest episode, with the skills their prompts carried
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from krill.evaluate.figures import _img, _save, plt
from krill.io import read_jsonl
from krill.schema import SkillBank
from krill.train.runs import finished_phases

PHASE_FIGURES = ("expert_episodes", "policy_episodes", "total", "examples", "initial_loss", "final_loss",
                 "iterations", "updates", "success_rate")  # fmt: skip
OBSERVATION_CHARS = 300  # an example step's observation, cut: the page stays readable


def phase_rows(run_dir: Path) -> list[tuple[str, float | None, str]]:
    """(phase, wall seconds, key figures) of every phase `state.json` records as done, in run order."""
    rows = []
    for phase, info in finished_phases(run_dir).items():
        figures = ", ".join(f"{k.replace('_', ' ')} {_num(info[k])}" for k in PHASE_FIGURES if k in info)
        wall = info.get("wall_time_s")
        rows.append((phase, float(wall) if isinstance(wall, int | float) else None, figures))
    return rows


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _num(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def phase_table(rows: list[tuple[str, float | None, str]]) -> str:
    if not rows:
        return "<p>No phase times recorded (a `krill rl` or `krill sft` folder has no state.json).</p>"
    e = html.escape
    total = sum(w for _, w, _ in rows if w is not None)
    body = "".join(f"<tr><td>{e(p)}</td><td>{'—' if w is None else f'{w:.0f} s'}</td><td>{e(f)}</td></tr>"
                   for p, w, f in rows)  # fmt: skip
    return (f"<table><tr><th>phase</th><th>wall</th><th>figures</th></tr>{body}"
            f"<tr><td><b>all phases</b></td><td><b>{total / 60:.1f} min</b></td><td></td></tr></table>")  # fmt: skip


def sft_losses(run_dir: Path) -> list[tuple[int, float]]:
    """(optimizer step, loss) of the run's SFT, from `sft/metrics.jsonl` or an SFT folder's own log."""
    for path in (run_dir / "sft" / "metrics.jsonl", run_dir / "metrics.jsonl"):
        if path.is_file():
            rows = [r for r in read_jsonl(path, repair_tail=True) if isinstance(r, dict)]
            points = [(int(r["step"]), float(r["loss"])) for r in rows
                      if isinstance(r.get("step"), int) and isinstance(r.get("loss"), int | float)]  # fmt: skip
            if points:
                return points
    return []


def sft_curve(points: list[tuple[int, float]], path: Path) -> Path | None:
    """The SFT loss per optimizer step; None without points."""
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(
        [s for s, _ in points], [loss for _, loss in points], marker="o" if len(points) < 40 else None, ms=3
    )
    ax.set_title(f"SFT loss per optimizer step ({points[0][1]:.2f} → {points[-1][1]:.2f})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("token cross-entropy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def episodes_of(eval_path: Path) -> list[dict]:
    """The episodes an eval result was computed from (`<name>.trajectories.jsonl` beside `<name>.json`)."""
    from krill.evaluate.eval import trajectories_path

    path = trajectories_path(eval_path)
    if not path.is_file():
        return []
    return [t for t in read_jsonl(path, repair_tail=True) if isinstance(t, dict) and "steps" in t]


def _skills_of(traj: dict) -> list[str]:
    return list((traj.get("metadata") or {}).get("skills_used") or [])


def skill_usage(episodes: list[dict], bank: SkillBank) -> list[dict]:
    """Per skill that reached a prompt: episodes whose prompt carried it, and the success rate of those
    episodes against the others; most used first, evolved skills (added after cycle 0) marked."""
    evolved = {h.skill_id for h in bank.history if h.evolution_cycle > 0}
    counts: dict[str, list[int]] = {}
    for t in episodes:
        for sid in set(_skills_of(t)):
            counts.setdefault(sid, []).append(int(bool(t.get("success"))))
    wins = sum(bool(t.get("success")) for t in episodes)
    rows = []
    for sid, outcomes in counts.items():
        skill, others = bank.get(sid), len(episodes) - len(outcomes)
        rows.append({
            "id": sid, "name": skill.bare_name if skill else sid, "category": skill.category if skill else "?",
            "evolved": sid in evolved, "episodes": len(outcomes), "success_with": sum(outcomes) / len(outcomes),
            "success_without": (wins - sum(outcomes)) / others if others else None,
        })  # fmt: skip
    return sorted(rows, key=lambda r: (-r["episodes"], r["name"]))


def usage_table(rows: list[dict], episodes: int, bank: SkillBank) -> str:
    if not rows:
        return "<p>No skill reached a held-out prompt (or the episodes were not saved).</p>"
    e = html.escape
    body = "".join(
        f"<tr><td>{e(r['name'])}{' <b>(evolved)</b>' if r['evolved'] else ''}</td><td>{e(r['category'])}</td>"
        f"<td>{r['episodes']}</td><td>{_pct(r['success_with'])}</td><td>{_pct(r['success_without'])}</td></tr>"
        for r in rows
    )
    unused = len(bank) - len(rows)
    return (f"<p>{len(rows)} of the bank's {len(bank)} skills reached at least one of {episodes} held-out prompts"
            f"{f'; {unused} never did' if unused > 0 else ''}. Success with/without a skill is correlation, not "
            "its effect: retrieval picks skills by task type.</p><table><tr><th>skill</th><th>category</th>"
            f"<th>episodes</th><th>success with</th><th>success without</th></tr>{body}</table>")  # fmt: skip


def example_episodes(episodes: list[dict]) -> list[tuple[str, dict]]:
    """(label, episode): the longest episode, and the first win and first loss besides it."""
    picks, seen = [], set()
    longest = max(episodes, key=lambda t: len(t["steps"]), default=None)
    win = next((t for t in episodes if t.get("success") and t is not longest), None)
    loss = next((t for t in episodes if not t.get("success") and t is not longest), None)
    for label, t in (("a win", win), ("a loss", loss), ("the longest", longest)):
        if t is not None and id(t) not in seen:
            seen.add(id(t))
            picks.append((label, t))
    return picks


def examples_html(picks: list[tuple[str, dict]], bank: SkillBank) -> str:
    if not picks:
        return "<p>No held-out episodes saved with this run.</p>"
    e = html.escape
    parts = []
    for label, t in picks:
        skills = [bank.get(s).name if bank.get(s) else s for s in _skills_of(t)]
        steps = "".join(
            f"<li><code>{e(str(s.get('action', '')))}</code> → {e(str(s.get('observation', ''))[:OBSERVATION_CHARS])}</li>"
            for s in t["steps"]
        )
        outcome = "won" if t.get("success") else "lost"
        parts.append(
            f"<details><summary><b>{e(label)}</b>: {e(str(t.get('task_description', '?')))} "
            f"({e(str(t.get('task_category', '?')))}, {outcome} in {len(t['steps'])} steps)</summary>"
            f"<p>skills in the prompt: {e(', '.join(skills)) or 'none'}</p><ol>{steps}</ol></details>"
        )
    return "".join(parts)


def run_sections(run_dir: Path, evals: dict[str, dict], eval_paths: dict[str, Path], bank: SkillBank,
                 out_dir: Path) -> dict[str, str]:  # fmt: skip
    """The page's HTML for phase times, the SFT curve, skill usage and example episodes."""
    curve = sft_curve(sft_losses(run_dir), out_dir / "sft_loss.png")
    trained = "after" if "after" in eval_paths else next(iter(eval_paths), None)
    episodes = episodes_of(eval_paths[trained]) if trained else []
    return {
        "phases": phase_table(phase_rows(run_dir)),
        "sft": _img(curve, "SFT loss per optimizer step") if curve else "<p>No SFT log in this run.</p>",
        "usage": usage_table(skill_usage(episodes, bank), len(episodes), bank),
        "examples": examples_html(example_episodes(episodes), bank),
    }
