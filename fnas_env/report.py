"""Figures and a Markdown summary of one or more searches (``fnas report``).

:func:`write_report` reads run folders (:class:`fnas_env.run.RunFolder`) and writes
into one output folder:

``progress.png``
    Best reward and best accuracy against activated samples (two panels). Runs are
    grouped by (env id, method) from their ``search.json``; a group of several seeds
    is drawn as the median over seeds with the min-max band, one run as its line.
    A group's curves stop at its shortest seed's activated samples, so the median
    is always taken over every seed.
``front.png``
    Accuracy against latency: every activated architecture as a point (one colour
    per group), the group's accuracy/latency Pareto front
    (:func:`fnas_env.run.pareto_front` of the union of its seeds) as a step line, and
    the reward's target ``T`` as a vertical line when a run has one. One panel per
    env id. Envs whose records hold no latency (table benchmarks with accuracy only)
    get no panel, and the summary says so.
``choices-RUN.png``
    How often each choice of each decision is sampled as the search goes on, one
    figure per run: the sampled architectures (activated, cached and trusted ones;
    AEB replays are not new samples) are cut into consecutive windows, and each
    panel is a stacked bar chart (bars as wide as their window, so it reads as a
    stacked area) of the choices' shares per window.

    Layout: one row per block of the space and one column per kind of decision
    (mnas: 7 blocks x op, kernel, se, skip, filters, layers). Stacked shares rather
    than heatmaps, because a heatmap shows one choice's share per cell and would
    need a row per (block, choice) pair (28 rows for mnas' conv op alone), while a
    stacked panel shows every choice of a decision at once; and columns by kind,
    because a kind has the same choices (and so the same colours and one legend
    above its column) in every block, so reading down a column compares blocks and
    reading along a panel shows the controller converging. Spaces with one decision
    per block (nb201's edges, macro's layers) are wrapped into a near-square grid
    with one shared legend.
``report.md``
    Per run: env, method, seed, target, activated / cached / trusted / replayed
    counts, best reward, best accuracy and best architecture; per group the median
    over seeds; the figures and any notes (runs with nothing to plot, envs without
    latency).

Every ``*_data`` function returns what its figure plots (curves, points, shares), so
the figures can be checked against the records. Figures are
:class:`matplotlib.figure.Figure` objects drawn with the Agg backend: no pyplot
state is touched.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fnas_env.record import RecordEntry, SearchCounters
from fnas_env.run import RunFolder, RunSettings, pareto_front
from fnas_env.spaces import SearchSpace, get_space
from fnas_env.spaces.base import Decision

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "RunData",
    "Curve",
    "ProgressData",
    "FrontSeries",
    "FrontPanel",
    "FrontData",
    "ChoiceShares",
    "Report",
    "load_run",
    "group_runs",
    "group_label",
    "group_colors",
    "running_best",
    "progress_data",
    "front_data",
    "choice_shares",
    "plot_progress",
    "plot_front",
    "plot_choices",
    "write_report",
    "DPI",
    "PROGRESS_SIZE",
    "FRONT_PANEL_SIZE",
    "DEFAULT_WINDOWS",
    "SAMPLED_KINDS",
]

#: resolution of every figure (pixels per inch)
DPI = 100
#: how many windows :func:`choice_shares` cuts a search into by default
DEFAULT_WINDOWS = 8
#: record kinds that are new samples of the controller (replays are not)
SAMPLED_KINDS = ("activated", "cached", "trusted")
#: figure sizes in inches (width, height)
PROGRESS_SIZE = (11.0, 4.2)
FRONT_PANEL_SIZE = (5.5, 4.5)

GroupKey = tuple[str, str]


# ---- reading runs -------------------------------------------------------------------


@dataclass(frozen=True)
class RunData:
    """One run folder as the report reads it.

    Attributes:
        path: the run folder.
        label: a short unique name (the folder's name; a suffix tells equal names apart).
        settings: its ``search.json``.
        entries: every record entry, in search order.
        counters: the record's counters (activated, cached, trusted, replayed, best).
        found: each successfully activated architecture once (its first success).
    """

    path: Path
    label: str
    settings: RunSettings
    entries: tuple[RecordEntry, ...]
    counters: SearchCounters
    found: tuple[RecordEntry, ...]

    @property
    def group(self) -> GroupKey:
        """The (env id, method) the run is grouped by."""
        return (self.settings.env_id, self.settings.method)

    @property
    def target(self) -> float | None:
        """The reward's target ``T`` (``env_kwargs["target"]``) when it is a number."""
        value = self.settings.env_kwargs.get("target")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return None
        return float(value)

    @property
    def space(self) -> str | None:
        """The search space of the record's architectures (``None`` for an empty record)."""
        return self.entries[0].space if self.entries else None

    @property
    def sampled(self) -> list[RecordEntry]:
        """The controller's new samples in order: activated, cached and trusted entries."""
        return [e for e in self.entries if e.kind in SAMPLED_KINDS]

    @property
    def activated(self) -> list[RecordEntry]:
        """Every activated sample (real evaluation) in order, failed ones included."""
        return [e for e in self.entries if e.kind == "activated"]


def load_run(path: str | os.PathLike, label: str | None = None) -> RunData:
    """Read the run folder ``path``.

    Args:
        path: a folder made by ``fnas search`` (``search.json`` and ``record.jsonl``).
        label: the run's name in figures (default: the folder's name).

    Raises:
        FileNotFoundError: ``path`` does not exist, is not a folder, or has no
            ``search.json`` (:class:`fnas_env.run.NotARunFolder`).
        ValueError: ``search.json`` is not a settings file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (give the folder of a search run)")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder (give the folder of a search run)")
    folder = RunFolder(path)
    settings = folder.settings()
    entries = tuple(folder.entries())
    counters = SearchCounters()
    for entry in entries:
        counters.update(entry)
    return RunData(
        path=path,
        label=label or path.resolve().name or str(path),
        settings=settings,
        entries=entries,
        counters=counters,
        found=tuple(folder.activated()),
    )


def _unique_labels(paths: Sequence[Path]) -> list[str]:
    names = [p.resolve().name or str(p) for p in paths]
    out = []
    for i, name in enumerate(names):
        out.append(name if names.count(name) == 1 else f"{name}-{i + 1}")
    return out


def group_runs(runs: Sequence[RunData]) -> dict[GroupKey, list[RunData]]:
    """Runs grouped by (env id, method), in order of first appearance."""
    groups: dict[GroupKey, list[RunData]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    return groups


def group_label(key: GroupKey) -> str:
    """How a group is named in figures: ``"method (env id)"``."""
    env_id, method = key
    return f"{method} ({env_id})"


# ---- figure 1: best reward and accuracy against activated samples ------------------------


def running_best(values: Sequence[float | None]) -> np.ndarray:
    """The running maximum of ``values``; missing or non-finite values are skipped
    (the running maximum stays NaN until the first finite value)."""
    array = np.array(
        [np.nan if v is None or not math.isfinite(v) else float(v) for v in values], dtype=float
    )
    if array.size == 0:
        return array
    return np.fmax.accumulate(array)


@dataclass(frozen=True)
class Curve:
    """One line of :func:`plot_progress` (a group's median and band, or a single run).

    Attributes:
        label: the legend text.
        group: the (env id, method) it draws.
        runs: the run labels it draws.
        samples: activated samples ``1..n`` (the x values).
        median: the median over the runs (a single run's own curve).
        low, high: the band's minimum and maximum over the runs (equal to ``median``
            for a single run).
    """

    label: str
    group: GroupKey
    runs: tuple[str, ...]
    samples: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class ProgressData:
    """What :func:`plot_progress` draws.

    Attributes:
        reward, accuracy: one curve per group that has an activated architecture.
        run_reward, run_accuracy: each run's own running best (run label -> values
            per activated sample).
        notes: what was left out and why.
    """

    reward: list[Curve]
    accuracy: list[Curve]
    run_reward: dict[str, np.ndarray]
    run_accuracy: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)


def _combine(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stacked = np.vstack(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanmedian(stacked, axis=0), np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)


def progress_data(runs: Sequence[RunData]) -> ProgressData:
    """Best reward and best accuracy after each activated sample, per run and per group.

    A run's curve is the running maximum of its activated samples' rewards
    (accuracies) in search order. A group's curve is the median over its seeds with
    the min-max band, up to the shortest seed's activated samples.
    """
    run_reward: dict[str, np.ndarray] = {}
    run_accuracy: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for run in runs:
        activated = run.activated
        if not run.found:
            entries = len(run.entries)
            notes.append(
                f"{run.label}: no activated architecture ({entries} record entries), not plotted"
            )
            continue
        run_reward[run.label] = running_best([e.reward for e in activated])
        run_accuracy[run.label] = running_best([e.accuracy for e in activated])
    reward: list[Curve] = []
    accuracy: list[Curve] = []
    for key, members in group_runs(runs).items():
        labels = [r.label for r in members if r.label in run_reward]
        if not labels:
            continue
        n = min(len(run_reward[label]) for label in labels)
        longest = max(len(run_reward[label]) for label in labels)
        if n < longest:
            notes.append(
                f"{group_label(key)}: curves end at {n} activated samples, the shortest of its "
                f"{len(labels)} seeds (the longest has {longest})"
            )
        samples = np.arange(1, n + 1)
        name = group_label(key)
        if len(labels) == 1:
            name += f", seed {next(r.settings.seed for r in members if r.label == labels[0])}"
        else:
            name += f", median of {len(labels)} seeds"
        for curves, per_run in ((reward, run_reward), (accuracy, run_accuracy)):
            median, low, high = _combine([per_run[label][:n] for label in labels])
            curves.append(Curve(name, key, tuple(labels), samples, median, low, high))
    return ProgressData(reward, accuracy, run_reward, run_accuracy, notes)


# ---- figure 2: accuracy against latency ---------------------------------------------------


@dataclass(frozen=True)
class FrontSeries:
    """One group's points on an accuracy/latency panel.

    Attributes:
        label: the legend text.
        group: the (env id, method).
        points: every activated architecture of the group's runs with a latency.
        front: the Pareto front of ``points``, by increasing latency.
    """

    label: str
    group: GroupKey
    points: list[RecordEntry]
    front: list[RecordEntry]


@dataclass(frozen=True)
class FrontPanel:
    """One env's panel: its groups' points and fronts, and the runs' targets ``T``."""

    env_id: str
    series: list[FrontSeries]
    targets: tuple[float, ...]


@dataclass(frozen=True)
class FrontData:
    """What :func:`plot_front` draws: one panel per env id whose records have latencies.

    Attributes:
        panels: the panels, in order of first appearance of the env.
        skipped: env ids whose activated architectures have no latency.
    """

    panels: list[FrontPanel]
    skipped: list[str]


def front_data(runs: Sequence[RunData]) -> FrontData:
    """Every activated architecture with a latency, and each group's Pareto front, per env."""
    panels: list[FrontPanel] = []
    skipped: list[str] = []
    envs: dict[str, list[RunData]] = {}
    for run in runs:
        envs.setdefault(run.settings.env_id, []).append(run)
    for env_id, env_runs in envs.items():
        series = []
        for key, members in group_runs(env_runs).items():
            points = [
                e
                for r in members
                for e in r.found
                if e.latency is not None and e.accuracy is not None
            ]
            if points:
                series.append(FrontSeries(group_label(key), key, points, pareto_front(points)))
        if not series:
            if any(r.found for r in env_runs):
                skipped.append(env_id)
            continue
        targets = sorted({r.target for r in env_runs if r.target is not None})
        panels.append(FrontPanel(env_id, series, tuple(targets)))
    return FrontData(panels, skipped)


# ---- figure 3: choices over the search ----------------------------------------------------


@dataclass(frozen=True)
class ChoiceShares:
    """How often each choice of each decision is sampled, per window of the search.

    Attributes:
        label: the run's label.
        space: the search space's name.
        decisions: the space's decisions (names and choices).
        windows: ``(start, stop)`` of each window, indices into the run's sampled
            architectures (:attr:`RunData.sampled`), consecutive and covering them all.
        counts: ``counts[d, w, c]``: how many sampled architectures of window ``w``
            took choice ``c`` of decision ``d`` (shape: decisions x windows x the
            largest number of choices; choices a decision lacks count 0).
    """

    label: str
    space: str
    decisions: tuple[Decision, ...]
    windows: tuple[tuple[int, int], ...]
    counts: np.ndarray

    @property
    def shares(self) -> np.ndarray:
        """``counts`` divided by each window's size: each decision's shares in a window sum to 1."""
        sizes = np.array([stop - start for start, stop in self.windows], dtype=float)
        return self.counts / sizes[None, :, None]


def choice_shares(run: RunData, windows: int = DEFAULT_WINDOWS) -> ChoiceShares | None:
    """The share of each choice of each decision in ``windows`` consecutive windows.

    Args:
        run: the run.
        windows: how many windows (fewer when the run has fewer sampled architectures).

    Returns:
        The shares, or ``None`` when the run has no sampled architecture.

    Raises:
        ValueError: ``windows`` is not positive, or the record mixes search spaces.
    """
    if windows < 1:
        raise ValueError(f"windows must be a positive int, got {windows!r}")
    sampled = run.sampled
    if not sampled:
        return None
    spaces = {e.space for e in sampled}
    if len(spaces) > 1:
        raise ValueError(f"the record of {run.label} mixes search spaces {sorted(spaces)}")
    space = get_space(sampled[0].space)
    n = len(sampled)
    edges = np.linspace(0, n, min(windows, n) + 1).round().astype(int)
    bounds = tuple((int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]))
    choices = np.array([e.choices for e in sampled], dtype=int)
    if choices.shape[1] != space.num_decisions:
        raise ValueError(
            f"the record of {run.label} has architectures with {choices.shape[1]} choices; "
            f"space {space.name!r} has {space.num_decisions} decisions"
        )
    counts = np.zeros((space.num_decisions, len(bounds), space.max_choices), dtype=int)
    for w, (start, stop) in enumerate(bounds):
        for d in range(space.num_decisions):
            counts[d, w] = np.bincount(choices[start:stop, d], minlength=space.max_choices)
    return ChoiceShares(run.label, space.name, space.decisions, bounds, counts)


def _choice_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _kind_name(decision: Decision) -> str:
    """A decision's kind without its block: ``b3.kernel`` -> ``kernel``, ``block2_e`` -> ``e``."""
    stripped = re.sub(r"^[A-Za-z]*\d+[._-]", "", decision.name)
    return stripped or decision.name


def _layout(space: SearchSpace) -> tuple[int, int, dict[tuple[int, int], int], bool]:
    """Panel grid of ``space``: rows, columns, (row, col) -> decision index, and whether the
    grid is wrapped (one decision per block) rather than blocks x kinds."""
    blocks = space.blocks or tuple((i,) for i in range(space.num_decisions))
    if all(len(b) == 1 for b in blocks):
        n = len(blocks)
        ncols = math.ceil(math.sqrt(n))
        nrows = math.ceil(n / ncols)
        return nrows, ncols, {(i // ncols, i % ncols): b[0] for i, b in enumerate(blocks)}, True
    ncols = max(len(b) for b in blocks)
    cells = {(r, c): d for r, b in enumerate(blocks) for c, d in enumerate(b)}
    return len(blocks), ncols, cells, False


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


# ---- the whole report ----------------------------------------------------------------


@dataclass
class Report:
    """What :func:`write_report` wrote and the data it drew.

    Attributes:
        out: the output folder.
        markdown: the summary's path (``out/report.md``).
        runs: the runs read.
        progress: figure 1's data.
        front: figure 2's data.
        choices: figure 3's data per run label (runs without samples are absent).
        figures: figure (``"progress"``, ``"front"``, ``"choices:RUN LABEL"``) -> PNG path.
        notes: what was left out and why (also in the summary).
    """

    out: Path
    markdown: Path
    runs: list[RunData]
    progress: ProgressData
    front: FrontData
    choices: dict[str, ChoiceShares]
    figures: dict[str, Path]
    notes: list[str]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _median(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else None


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(*cells: object) -> str:
    return "| " + " | ".join(_cell(str(c)) for c in cells) + " |"


def _markdown(report: Report) -> str:
    runs = report.runs
    run_columns = (
        "run", "env", "method", "seed", "target T", "activated", "cached", "trusted",
        "replayed", "failed", "best reward", "best accuracy (%)", "best architecture",
    )  # fmt: skip
    group_columns = (
        "env", "method", "seeds", "activated", "cached", "trusted", "replayed",
        "best reward", "best accuracy (%)",
    )  # fmt: skip
    lines = [
        "# Search report",
        "",
        f"{len(runs)} run(s) in {len(group_runs(runs))} group(s) by (env id, method). "
        "Activated: really evaluated samples (they spend the budget); cached: repeats served "
        "from the record; trusted: rewarded by the critic without training; replayed: AEB "
        "replays (not new samples).",
        "",
        "## Runs",
        "",
        _row(*run_columns),
        _row("---", "---", "---", *["---:"] * 9, "---"),
    ]
    for run in runs:
        c, s = run.counters, run.settings
        arch = f"`{c.best_arch}`" if c.best_arch else "-"
        lines.append(
            _row(
                run.label,
                s.env_id,
                s.method,
                s.seed,
                _fmt(run.target),
                c.activated,
                c.cached,
                c.trusted,
                c.replayed,
                c.failed,
                _fmt(c.best_reward),
                _fmt(c.best_accuracy),
                arch,
            )  # fmt: skip
        )
    lines += ["", "## Groups (median over seeds)", "", _row(*group_columns)]
    lines.append(_row("---", "---", *["---:"] * 7))
    for (env_id, method), members in group_runs(runs).items():
        cs = [r.counters for r in members]
        medians = [
            _fmt(_median([getattr(c, name) for c in cs]))
            for name in (
                "activated",
                "cached",
                "trusted",
                "replayed",
                "best_reward",
                "best_accuracy",
            )
        ]
        lines.append(_row(env_id, method, len(members), *medians))
    lines += ["", "## Best reward and accuracy against activated samples", ""]
    if "progress" in report.figures:
        lines += ["![best reward and accuracy](progress.png)", ""]
    lines += [f"- {note}" for note in report.progress.notes]
    lines += ["", "## Accuracy against latency", ""]
    if "front" in report.figures:
        lines += [
            "Points: activated architectures; lines: each group's Pareto front; "
            "dashed: the target T.",
            "",
            "![accuracy against latency](front.png)",
            "",
        ]
    else:
        lines += ["No figure: no activated architecture has a latency.", ""]
    for env_id in report.front.skipped:
        lines.append(f"- {env_id}: the record has no latency (accuracy only), no panel")
    lines += ["", "## Choices over the search", ""]
    if not report.choices:
        lines.append("No run has sampled architectures.")
    for label, shares in report.choices.items():
        name = report.figures[f"choices:{label}"].name
        sizes = [b - a for a, b in shares.windows]
        lines += [
            f"### {label}",
            "",
            f"{shares.windows[-1][1]} sampled architectures of space {shares.space} in "
            f"{len(shares.windows)} windows of {min(sizes)}-{max(sizes)}; each panel: the share "
            "of each choice of one decision per window.",
            "",
            f"![choices of {label}]({name})",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    windows: int = DEFAULT_WINDOWS,
) -> Report:
    """Read the run folders ``paths`` and write the figures and ``report.md`` into ``out``.

    Args:
        paths: run folders (at least one, each once).
        out: the output folder (made if missing; files of an earlier report are replaced).
        windows: how many windows the choices figures cut each search into.

    Returns:
        What was written and the data each figure drew.

    Raises:
        FileNotFoundError: a path is not a run folder.
        ValueError: no path, a path given twice, a bad ``windows``, ``out`` is a file,
            or no run has an activated architecture (nothing to plot).
    """
    if not paths:
        raise ValueError("give at least one run folder")
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
        raise ValueError(f"windows must be a positive int, got {windows!r}")
    folders = [Path(p) for p in paths]
    seen: dict[Path, Path] = {}
    for folder in folders:
        key = folder.resolve()
        if key in seen:
            raise ValueError(f"run folder {folder} is given twice")
        seen[key] = folder
    runs = [load_run(p, label) for p, label in zip(folders, _unique_labels(folders))]
    if not any(r.found for r in runs):
        described = ", ".join(f"{r.path} ({len(r.entries)} record entries)" for r in runs)
        which = "the run has no" if len(runs) == 1 else "none of the runs has an"
        raise ValueError(
            f"nothing to plot: {which} activated architecture yet: {described}; "
            "run or resume the search first"
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: give a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    progress = progress_data(runs)
    front = front_data(runs)
    figures: dict[str, Path] = {}
    colors = group_colors([r.group for r in runs])
    figures["progress"] = plot_progress(progress, out / "progress.png", colors)
    if front.panels:
        figures["front"] = plot_front(front, out / "front.png", colors)
    choices: dict[str, ChoiceShares] = {}
    files = {"progress.png", "front.png", "report.md"}
    for i, run in enumerate(runs):
        shares = choice_shares(run, windows)
        if shares is None:
            continue
        choices[run.label] = shares
        name = f"choices-{_slug(run.label)}.png"
        if name in files:  # two labels with one slug
            name = f"choices-{_slug(run.label)}-{i + 1}.png"
        files.add(name)
        figures[f"choices:{run.label}"] = plot_choices(shares, out / name)
    notes = list(progress.notes) + [
        f"{env_id}: no latency in the record, no accuracy/latency panel" for env_id in front.skipped
    ]
    report = Report(out, out / "report.md", runs, progress, front, choices, figures, notes)
    report.markdown.write_text(_markdown(report))
    return report
