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

from fnas_env.report import data, figures, summary
from fnas_env.report.data import *  # noqa: F403 - the package's public names
from fnas_env.report.figures import *  # noqa: F403
from fnas_env.report.summary import *  # noqa: F403

__all__ = [*data.__all__, *figures.__all__, *summary.__all__]
