"""What the report's figures plot, read from run folders (no matplotlib).

See :mod:`fnas_env.report` for the figures these data are for.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fnas_env.record import RecordEntry, SearchCounters
from fnas_env.run import RunFolder, RunSettings, pareto_front
from fnas_env.spaces import SearchSpace, get_space
from fnas_env.spaces.base import Decision

__all__ = [
    "RunData",
    "Curve",
    "ProgressData",
    "FrontSeries",
    "FrontPanel",
    "FrontData",
    "ChoiceShares",
    "load_run",
    "group_runs",
    "group_label",
    "running_best",
    "progress_data",
    "front_data",
    "choice_shares",
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
