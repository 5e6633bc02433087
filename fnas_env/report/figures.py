"""The report's figures: matplotlib ``Figure`` objects (Agg), no pyplot state."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fnas_env.spaces import get_space

if TYPE_CHECKING:
    from matplotlib.figure import Figure


from fnas_env.report.data import (
    DPI,
    FRONT_PANEL_SIZE,
    PROGRESS_SIZE,
    ChoiceShares,
    FrontData,
    GroupKey,
    ProgressData,
    _choice_text,
    _kind_name,
    _layout,
)

__all__ = [
    "group_colors",
    "plot_progress",
    "plot_front",
    "plot_choices",
]


# ---- drawing -----------------------------------------------------------------------


def _new_figure(size: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _colors(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def group_colors(groups: Sequence[GroupKey]) -> dict[GroupKey, tuple[float, float, float, float]]:
    """One colour per group, so a group has the same colour in every figure."""
    unique = list(dict.fromkeys(groups))
    return dict(zip(unique, _colors(len(unique))))


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, format="png")
    fig.clear()
    return path


def plot_progress(
    data: ProgressData,
    path: str | os.PathLike,
    colors: dict[GroupKey, tuple[float, float, float, float]] | None = None,
) -> Path:
    """Draw best reward and best accuracy against activated samples into ``path`` (PNG).

    Args:
        data: what to draw (:func:`progress_data`).
        path: the PNG file to write.
        colors: each group's colour (default: :func:`group_colors` of the curves' groups).
    """
    fig = _new_figure(PROGRESS_SIZE)
    ax_reward, ax_accuracy = fig.subplots(1, 2)
    colors = colors or group_colors([c.group for c in data.reward])
    for ax, curves, ylabel in (
        (ax_reward, data.reward, "best reward"),
        (ax_accuracy, data.accuracy, "best accuracy (%)"),
    ):
        for curve in curves:
            color = colors[curve.group]
            ax.plot(
                curve.samples, curve.median, color=color, drawstyle="steps-post", label=curve.label
            )
            if len(curve.runs) > 1:
                ax.fill_between(
                    curve.samples,
                    curve.low,
                    curve.high,
                    color=color,
                    alpha=0.2,
                    step="post",
                    linewidth=0,
                )
        ax.set_xlabel("activated samples")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax_reward.set_title("Best reward (median, min-max band over seeds)")
    ax_accuracy.set_title("Best accuracy")
    if data.reward:
        ax_reward.legend(fontsize="small", loc="lower right")
    return _save(fig, Path(path))


def plot_front(
    data: FrontData,
    path: str | os.PathLike,
    colors: dict[GroupKey, tuple[float, float, float, float]] | None = None,
) -> Path:
    """Draw accuracy against latency, one panel per env, into ``path`` (PNG).

    Args:
        data: what to draw (:func:`front_data`).
        path: the PNG file to write.
        colors: each group's colour (default: :func:`group_colors` of the panels' groups).

    Raises:
        ValueError: ``data`` has no panel (no activated architecture has a latency).
    """
    if not data.panels:
        raise ValueError("no activated architecture has a latency: nothing to draw")
    n = len(data.panels)
    fig = _new_figure((FRONT_PANEL_SIZE[0] * n, FRONT_PANEL_SIZE[1]))
    axes = np.atleast_1d(fig.subplots(1, n))
    color_of = colors or group_colors([s.group for p in data.panels for s in p.series])
    for ax, panel in zip(axes, data.panels):
        for s in panel.series:
            color = color_of[s.group]
            ax.scatter(
                [e.latency for e in s.points],
                [e.accuracy for e in s.points],
                s=12,
                alpha=0.45,
                color=color,
            )
            ax.plot(
                [e.latency for e in s.front],
                [e.accuracy for e in s.front],
                drawstyle="steps-post",
                marker="o",
                markersize=4,
                color=color,
                label=f"{s.label}: front",
            )
        for target in panel.targets:
            ax.axvline(
                target, color="0.3", linestyle="--", linewidth=1, label=f"target T = {target:g}"
            )
        ax.set_title(panel.env_id)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    return _save(fig, Path(path))


def plot_choices(shares: ChoiceShares, path: str | os.PathLike) -> Path:
    """Draw each decision's choice shares per window into ``path`` (PNG).

    The layout is the module docstring's; the panels are placed by fixed margins (no
    layout engine, no shared axes), which keeps a 42-panel grid quick to draw.

    Args:
        shares: what to draw (:func:`choice_shares`).
        path: the PNG file to write.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    space = get_space(shares.space)
    nrows, ncols, cells, wrapped = _layout(space)
    cell_w, cell_h = (2.6, 1.7) if wrapped else (1.9, 1.05)
    gap_w, gap_h = 0.25, (0.45 if wrapped else 0.3)
    left, right, bottom = 0.75, 0.2, 0.65
    top = 1.0 if wrapped else 0.95  # title, legend(s) and column titles
    width = left + right + ncols * cell_w + (ncols - 1) * gap_w
    height = top + bottom + nrows * cell_h + (nrows - 1) * gap_h
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=gap_w / cell_w,
        hspace=gap_h / cell_h,
    )
    axes = np.array(fig.subplots(nrows, ncols, squeeze=False))
    starts = np.array([a for a, _ in shares.windows])
    values = shares.shares
    n_total = shares.windows[-1][1]
    palette = _colors(space.max_choices)
    xticks = MaxNLocator(nbins=3, integer=True).tick_values(0, n_total)
    xticks = xticks[(xticks >= 0) & (xticks <= n_total)]
    # legend of each column: the choices of its decision with the most choices
    column_legend = {
        c: max((d for (_, cc), d in cells.items() if cc == c), key=lambda i: shares.decisions[i].n)
        for c in range(ncols)
    }
    for r in range(nrows):
        for c in range(ncols):
            ax = axes[r, c]
            d = cells.get((r, c))
            if d is None:
                ax.set_axis_off()
                continue
            decision = shares.decisions[d]
            edges = np.append(starts, n_total)
            bottom_values = np.zeros(len(starts))
            for k, choice in enumerate(decision.choices):
                top_values = bottom_values + values[d, :, k]
                ax.stairs(
                    top_values,
                    edges,
                    baseline=bottom_values,
                    fill=True,
                    color=palette[k],
                    linewidth=0,
                    label=_choice_text(choice),
                )
                bottom_values = top_values
            ax.set_xlim(0, n_total)
            ax.set_ylim(0, 1)
            ax.set_yticks([0, 0.5, 1])
            ax.set_xticks(xticks)
            ax.tick_params(labelsize="x-small", length=2)
            if c > 0:
                ax.tick_params(labelleft=False)
            if (r + 1, c) in cells:
                ax.tick_params(labelbottom=False)
            if wrapped:
                ax.set_title(decision.name, fontsize="small", pad=3)
                continue
            if c == 0:
                ax.set_ylabel(f"block {r}", fontsize="small")
            if r == 0:
                ax.set_title(_kind_name(decision), fontsize="small", pad=3)
            if d == column_legend[c]:
                handles, labels = ax.get_legend_handles_labels()
                axes[0, c].legend(
                    handles,
                    labels,
                    fontsize="x-small",
                    ncol=min(len(labels), 4),
                    loc="lower center",
                    bbox_to_anchor=(0.5, 1.0 + 0.22 / cell_h),
                    frameon=False,
                    handlelength=1,
                    columnspacing=0.8,
                    borderaxespad=0,
                )
    title_y = 1 - 0.12 / height
    fig.suptitle(
        f"{shares.label}: choice shares over {n_total} sampled architectures "
        f"({len(shares.windows)} windows)",
        fontsize="medium",
        y=title_y,
        va="top",
    )
    if wrapped:
        first = axes[0, 0]
        handles, labels = first.get_legend_handles_labels()
        if all(dec.choices == shares.decisions[0].choices for dec in shares.decisions):
            fig.legend(
                handles,
                labels,
                loc="upper center",
                bbox_to_anchor=(0.5, 1 - 0.42 / height),
                ncol=min(len(labels), 6),
                fontsize="small",
                frameon=False,
            )
        else:
            for ax in axes.flat:
                if ax.axison:
                    ax.legend(fontsize="xx-small")
    fig.supxlabel(
        "sampled architectures (activated, cached, trusted)", fontsize="small", y=0.15 / height
    )
    return _save(fig, Path(path))
