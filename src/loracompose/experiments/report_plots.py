"""The report's plots (matplotlib, Agg backend, PNG): one function per figure, each returns its file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def short(model: str) -> str:
    return Path(model).name if "/" in model else model


def accuracy_by_condition(rows: dict, conditions: list[str], series: list[str], title: str, out: Path) -> Path:
    """Hard accuracy with its 95% interval per condition; one marker series per prompt set.

    rows: (series, condition) → Summary.
    """
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(conditions) + 3.5), 4.0))
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for j, condition in enumerate(conditions):
            summary = rows.get((name, condition))
            if summary is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(summary.hard)
            lo.append(summary.hard - summary.hard_ci[0])
            hi.append(summary.hard_ci[1] - summary.hard)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=name)
    ax.set_xticks(range(len(conditions)), conditions, rotation=30, ha="right")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("hard accuracy (95% CI)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="prompts", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def accuracy_vs_perplexity(points: list[tuple[str, float, float]], title: str, out: Path) -> Path:
    """One point per condition: (label, perplexity, hard accuracy)."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for label, ppl, acc in points:
        ax.scatter(ppl, acc)
        ax.annotate(label, (ppl, acc), fontsize=8, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("perplexity under the reference model (lower = more fluent)")
    ax.set_ylabel("hard accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def differences(rows: list[tuple[str, float, float, float]], title: str, out: Path) -> Path:
    """A forest plot: one row per comparison, its difference with a 95% interval, and a line at 0.

    rows: (label, difference, interval low, interval high), top to bottom.
    """
    fig, ax = plt.subplots(figsize=(7.0, 0.38 * len(rows) + 1.3))
    ys = np.arange(len(rows))[::-1]
    diffs = np.array([r[1] for r in rows])
    ax.errorbar(diffs, ys, xerr=[diffs - np.array([r[2] for r in rows]), np.array([r[3] for r in rows]) - diffs],
                fmt="o", capsize=3)
    ax.axvline(0.0, color="grey", linewidth=1)
    ax.set_yticks(ys, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("Δ hard accuracy (95% interval)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def target_heatmap(values: dict, rows: list[str], cols: list[str], conditions: list[str], title: str,
                   out: Path) -> Path:
    """Joint hard accuracy per sentiment (rows) × topic (columns) target, one panel per condition.

    values: (condition, row, col) → accuracy.
    """
    fig, axes = plt.subplots(1, len(conditions), figsize=(2.6 * len(conditions) + 1, 0.6 * len(rows) + 1.6),
                             squeeze=False)
    image = None
    for ax, condition in zip(axes[0], conditions):
        grid = np.array([[values.get((condition, r, c), np.nan) for c in cols] for r in rows])
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_title(condition, fontsize=9)
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.5 else "black")
    fig.suptitle(title, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="joint hard accuracy")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
