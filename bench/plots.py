"""PNG pictures beside the benchmark tables (matplotlib, headless); a missing matplotlib costs the picture only."""

from __future__ import annotations

import sys
from pathlib import Path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots: matplotlib is not installed; no picture written.", file=sys.stderr)
        return None
    return plt


def bar_chart(path: Path, title: str, groups: list[str], series: dict[str, list[float]], unit: str) -> bool:
    """Grouped bars: one group per label in `groups`, one bar per series; False when no picture was written."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([g + i * width for g in range(len(groups))], values, width, label=name)
    ax.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))], groups)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
