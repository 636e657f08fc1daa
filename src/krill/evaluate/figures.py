"""The report's figure plumbing, shared by every page and table that draws: headless matplotlib, PNGs
written atomically, figures inlined as data URIs, whole-iteration axes."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers/CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from krill.io import atomic_write_bytes  # noqa: E402

__all__ = ["MaxNLocator", "_img", "_plain", "_save", "iteration_axis", "plt", "skipped_iterations"]


def _plain(label: str) -> str:
    """A figure label shown as written: `$` escaped, so matplotlib never parses it as mathtext."""
    return label.replace("$", r"\$")


def _save(fig, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def skipped_iterations(metrics: list[dict]) -> list[int]:
    """Iterations whose update was skipped (every group's rollouts had the same reward)."""
    return [int(m["iteration"]) for m in metrics if m.get("update/skipped")]


def iteration_axis(ax, iterations: list[int]) -> None:
    """An x axis of whole RL iterations: integer ticks, half an iteration of margin, so a run of one
    iteration shows the tick `1`, not a span of fractions around it."""
    ax.set_xlim(min(iterations) - 0.5, max(iterations) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("RL iteration")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'
